"""Issue 11 item 6: fixed, principled probe variants on the shared DINOv3 crops (leave-one-out).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/probe_variants.py``. The head is cross-fitted
by source image (as in ``probe_experiment.py``); nothing here is tuned on the evaluation: each
variant is one fixed rule, all at the default weight 1 and N = 50 unless named.

- ``probe``: ``cos + Σ_{l ∈ labels(c)} p_l(q)`` (the shipped rule).
- ``probe centred``: ``cos + Σ_{l ∈ labels(c)} (p_l(q) − π_l)``: only the head's evidence above
  the label's catalogue prior π counts (a candidate is not rewarded for carrying the frequent
  label the query would carry by chance).
- ``probe N=20``: the shipped rule over rerank's 20 candidates.
- ``probe utility``: ``cos + Σ_{l ∈ labels(c)} u_l · p_l(q)`` with ``u_l = 1 + N / (L · n_l)``, the
  expected gain of a label hit when the objective is micro plus macro recall@1 (a hit on a label
  carried by ``n_l`` of ``N`` items counts ``1/N`` in micro and ``1/(L · n_l)`` in macro).
- ``probe w=…``: the weight's sensitivity (0.5, 2, 4), looked at after the fact: not a choice.

Each row also gets the paired group-bootstrap interval of its difference to ``image``
(:func:`indexer.evaluation.uncertainty.paired_intervals`, 1000 resamples over the 20 photos),
the interval ``visrag evaluate`` reports.
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
from indexer.evaluation.uncertainty import paired_intervals  # noqa: E402
from indexer.labels.head import cross_fit_proba  # noqa: E402


def main() -> None:
    x, sets, groups, ids = load(DATA)
    labels = sorted(set().union(*sets))
    y = np.array([[lb in s for lb in labels] for s in sets], np.float64)
    proba = cross_fit_proba(x, y, groups)
    prior = y.mean(0)
    pool = pools(groups)
    cands50 = image_rankings(x, ids, pool, 50)
    cands20 = image_rankings(x, ids, pool, 20)
    rankings = {
        "image": cands50,
        "probe (w=1, N=50)": probe_rankings(x, y, proba, ids, cands50, 1.0),
        "probe centred (p - prior)": probe_rankings(x, y, proba - prior, ids, cands50, 1.0),
        "probe N=20": probe_rankings(x, y, proba, ids, cands20, 1.0),
        "probe utility (micro + macro)": probe_rankings(
            x, y, proba * (1 + len(y) / (len(labels) * y.sum(0))), ids, cands50, 1.0
        ),
        **{
            f"probe w={w:g} (sensitivity)": probe_rankings(x, y, proba, ids, cands50, w)
            for w in (0.5, 2.0, 4.0)
        },
    }
    as_sets = {name: [[sets[j] for j in r] for r in rs] for name, rs in rankings.items()}
    spread = paired_intervals(
        sets, groups, as_sets, [(n, "image") for n in rankings if n != "image"], [1]
    )
    interval = {
        (c["run"], c["metric"]): f"{c['difference']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]"
        for c in spread["comparisons"]
    }
    print(
        "| run | recall@1 | macro label recall@1 | recall@5 | recall@1 - image (95 %) | "
        "macro@1 - image (95 %) |\n|---|---|---|---|---|---|"
    )
    for name, ranking in rankings.items():
        r = score(sets, ranking)
        cells = " | ".join(f"{r[k]:.3f}" for k in ("recall@1", "label_recall_macro@1", "recall@5"))
        diffs = " | ".join(
            interval.get((name, m), "") for m in ("recall@1", "label_recall_macro@1")
        )
        print(f"| {name} | {cells} | {diffs} |")


if __name__ == "__main__":
    main()
