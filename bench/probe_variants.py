"""Issue 11 item 6: fixed, principled probe variants on the shared DINOv3 crops (leave-one-out).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/probe_variants.py``. The head is cross-fitted
by source image (as in ``probe_experiment.py``); nothing here is tuned on the evaluation: each
variant is one fixed rule, all at the default weight 1 and N = 50 unless named.

- ``probe``: ``cos + Σ_{l ∈ labels(c)} p_l(q)`` (the shipped rule).
- ``probe centred``: ``cos + Σ_{l ∈ labels(c)} (p_l(q) − π_l)``: only the head's evidence above
  the label's catalogue prior π counts (a candidate is not rewarded for carrying the frequent
  label the query would carry by chance).
- ``probe N=20``: the shipped rule over rerank's 20 candidates.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.probe_experiment import (  # noqa: E402
    DATA,
    image_rankings,
    load,
    pools,
    probe_rankings,
    score,
)
from indexer.label_head import cross_fit_proba  # noqa: E402


def main() -> None:
    x, sets, groups, ids = load(DATA)
    labels = sorted(set().union(*sets))
    y = np.array([[lb in s for lb in labels] for s in sets], np.float64)
    proba = cross_fit_proba(x, y, groups)
    prior = y.mean(0)
    pool = pools(groups)
    cands50 = image_rankings(x, ids, pool, 50)
    cands20 = image_rankings(x, ids, pool, 20)
    rows = {
        "image": score(sets, cands50),
        "probe (w=1, N=50)": score(sets, probe_rankings(x, y, proba, ids, cands50, 1.0)),
        "probe centred (p - prior)": score(
            sets, probe_rankings(x, y, proba - prior, ids, cands50, 1.0)
        ),
        "probe N=20": score(sets, probe_rankings(x, y, proba, ids, cands20, 1.0)),
    }
    print("| run | recall@1 | macro label recall@1 | recall@5 |\n|---|---|---|---|")
    for name, r in rows.items():
        cells = " | ".join(f"{r[k]:.3f}" for k in ("recall@1", "label_recall_macro@1", "recall@5"))
        print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
