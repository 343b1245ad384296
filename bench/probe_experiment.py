"""Leave-one-out experiment: image search vs ``probe`` (label head) vs baselines, real vectors.

Protocol (the repo's leave-one-out): every item is a query against all the others, items from
the query's own group (source image) excluded; rankings are scored by
:func:`indexer.evaluation.results.aggregate`, so ``recall@1`` and ``label_recall_macro@1`` mean
exactly what ``visrag evaluate`` reports. The label head that scores a query is cross-fitted
(:func:`indexer.labels.head.cross_fit_proba`, one group left out at a time): it never saw the
query's group. Rows:

- ``image``: cosine ranking;
- ``probe``: top-N by cosine re-scored by :func:`indexer.retrieval.probe.probe_scores` (fixed
weight);
- ``probe (nested w)``: the weight chosen per held-out group from a grid, on the other groups'
  queries only (leave-one-group-out selection);
- ``probe (prior only)``: the same formula with every query's probabilities replaced by the label
  priors — what the formula gains without looking at the query (the ablation that shows whether
  the head carries information);
- ``majority`` / ``random``: :mod:`indexer.evaluation.baselines`.

Then label-estimate quality (micro/macro F1 of ``p >= 0.5``, else the most probable label; Brier;
ECE over 10 bins) against the prior, and the permuted-label canary (labels shuffled across rows,
everything refitted: probe must stay within 0.05 recall@1 of the best baseline).

Run: ``python bench/probe_experiment.py [--data DIR] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import cpu_model  # noqa: E402
from indexer.evaluation.baselines import majority_ranking  # noqa: E402
from indexer.evaluation.estimates import estimate_quality  # noqa: E402
from indexer.evaluation.metrics import LabelSet, label_set  # noqa: E402
from indexer.evaluation.results import aggregate  # noqa: E402
from indexer.labels.head import DEFAULT_REG, cross_fit_proba  # noqa: E402
from indexer.retrieval.probe import DEFAULT_CANDIDATES, DEFAULT_WEIGHT, probe_order  # noqa: E402

DATA = Path("/work/shared/data/seed-crops-dinov3-vitl-medium")
GRID = (0.25, 0.5, 1.0, 2.0, 4.0)
KS = (1, 5)


def load(data: Path) -> tuple[np.ndarray, list[LabelSet], list[str], list[str]]:
    x = np.load(data / "embeddings.npy").astype(np.float64)
    meta = json.loads((data / "metadata.json").read_text())
    sets = [label_set(m["damage_types"]) for m in meta]
    return x, sets, [m["source_image"] for m in meta], [m["crop_id"] for m in meta]


def with_label_signal(x: np.ndarray, sets: list[LabelSet], amount: float, seed: int) -> np.ndarray:
    """Unit rows of ``x + amount · (labels @ R)``, R a random unit direction per label."""
    labels = sorted(set().union(*sets))
    r = np.random.default_rng(seed + 1).normal(size=(len(labels), x.shape[1]))
    r /= np.linalg.norm(r, axis=1, keepdims=True)
    y = np.array([[lb in s for lb in labels] for s in sets], np.float64)
    out = x + amount * (y @ r)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def pools(groups: list[str]) -> list[np.ndarray]:
    g = np.asarray(groups)
    return [np.flatnonzero(g != g[i]) for i in range(len(groups))]


def score(sets: list[LabelSet], rankings: list[list[int]], idx: list[int] | None = None) -> dict:
    idx = list(range(len(sets))) if idx is None else idx
    s, _ = aggregate([sets[i] for i in idx], [[sets[j] for j in rankings[i]] for i in idx], KS)
    return {k: s[k] for k in ("recall@1", "label_recall_macro@1", "recall@5")}


def image_rankings(
    x: np.ndarray, ids: list[str], pool: list[np.ndarray], n: int
) -> list[list[int]]:
    sims = x @ x.T
    out = []
    for i, rows in enumerate(pool):
        out.append(sorted(rows.tolist(), key=lambda j: (-sims[i, j], ids[j]))[:n])
    return out


def probe_rankings(
    x: np.ndarray,
    y: np.ndarray,
    proba: np.ndarray,
    ids: list[str],
    cands: list[list[int]],
    w: float,
) -> list[list[int]]:
    out = []
    for i, top in enumerate(cands):
        order = probe_order([ids[j] for j in top], x[top] @ x[i], y[top], proba[i], weight=w)
        out.append([top[o] for o in order])
    return out


def nested_probe(
    x: np.ndarray,
    y: np.ndarray,
    proba: np.ndarray,
    sets: list[LabelSet],
    groups: list[str],
    ids: list[str],
    cands: list[list[int]],
) -> tuple[list[list[int]], dict[str, float]]:
    """Per held-out group, the grid weight that maximises micro+macro recall@1 on the others."""
    by_w = {w: probe_rankings(x, y, proba, ids, cands, w) for w in GRID}
    out: list[list[int]] = [[] for _ in sets]
    chosen: dict[str, float] = {}
    for g in sorted(set(groups)):
        held = [i for i, s in enumerate(groups) if s == g]
        rest = [i for i, s in enumerate(groups) if s != g]

        def objective(w: float, rest: list[int] = rest) -> float:
            s = score(sets, by_w[w], rest)
            return s["recall@1"] + s["label_recall_macro@1"]

        best = max(GRID, key=lambda w: (objective(w), -w))
        chosen[g] = best
        for i in held:
            out[i] = by_w[best][i]
    return out, chosen


def random_score(sets: list[LabelSet], pool: list[np.ndarray], seed: int, n: int = 20) -> dict:
    rng = np.random.default_rng(seed)
    draws = [score(sets, [rng.permutation(rows).tolist()[:10] for rows in pool]) for _ in range(n)]
    return {k: float(np.mean([d[k] for d in draws])) for k in draws[0]}


def experiment(x, sets, groups, ids, *, reg, weight, n_cands, seed) -> dict[str, Any]:
    labels = sorted(set().union(*sets))
    y = np.array([[lb in s for lb in labels] for s in sets], np.float64)
    pool = pools(groups)
    t0 = time.perf_counter()
    proba = cross_fit_proba(x, y, groups, reg=reg, seed=seed)
    fit_s = time.perf_counter() - t0
    prior = np.tile(y.mean(0), (len(sets), 1))
    cands = image_rankings(x, ids, pool, n_cands)
    items = [SimpleNamespace(id=i) for i in ids]
    majority = [[ids.index(n.id) for n in majority_ranking(items, sets, rows, 10)] for rows in pool]
    nested, chosen = nested_probe(x, y, proba, sets, groups, ids, cands)
    rows = {
        "image": score(sets, cands),
        f"probe (w={weight:g}, N={n_cands})": score(
            sets, probe_rankings(x, y, proba, ids, cands, weight)
        ),
        "probe (nested w)": score(sets, nested),
        f"probe (prior only, w={weight:g})": score(
            sets, probe_rankings(x, y, prior, ids, cands, weight)
        ),
        "majority": score(sets, majority),
        "random (20 draws)": random_score(sets, pool, seed),
    }
    return {
        "rows": rows,
        "nested_weights": dict(Counter(chosen.values())),
        "estimates": {
            "head (cross-fitted)": estimate_quality(proba, y, labels),
            "prior": estimate_quality(prior, y, labels),
        },
        "cross_fit_seconds": round(fit_s, 1),
    }


def print_table(title: str, result: dict[str, Any]) -> None:
    print(
        f"\n## {title}\n\n| run | recall@1 | macro label recall@1 | recall@5 |\n|---|---|---|---|"
    )
    for name, s in result["rows"].items():
        print(
            f"| {name} | {s['recall@1']:.3f} | {s['label_recall_macro@1']:.3f} | "
            f"{s['recall@5']:.3f} |"
        )
    print(f"\nnested weight choices (weight: groups): {result['nested_weights']}")
    print("\n| label estimates | micro F1 | macro F1 | Brier | ECE |\n|---|---|---|---|---|")
    for name, e in result["estimates"].items():
        print(
            f"| {name} | {e['micro_f1']:.3f} | {e['macro_f1']:.3f} | {e['brier']:.4f} | "
            f"{e['ece']:.4f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--reg", type=float, default=DEFAULT_REG)
    ap.add_argument("--weight", type=float, default=DEFAULT_WEIGHT)
    ap.add_argument("--candidates", type=int, default=DEFAULT_CANDIDATES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    ap.add_argument(
        "--label-signal",
        type=float,
        default=0.0,
        help="stress test: add this much of a random projection of each row's labels to its "
        "vector (then re-normalise) to imitate vectors that already separate the labels",
    )
    args = ap.parse_args()
    x, sets, groups, ids = load(args.data)
    if args.label_signal:
        x = with_label_signal(x, sets, args.label_signal, args.seed)
    opts = {"reg": args.reg, "weight": args.weight, "n_cands": args.candidates, "seed": args.seed}
    print(f"# {args.data.name}: {len(sets)} vectors, {len(set(groups))} groups; {cpu_model()}")
    real = experiment(x, sets, groups, ids, **opts)
    print_table("leave-one-out, neighbours from the query's group excluded", real)
    perm = np.random.default_rng(args.seed).permutation(len(sets))
    canary = experiment(x, [sets[p] for p in perm], groups, ids, **opts)
    print_table("canary: labels permuted across rows", canary)
    rows = canary["rows"]
    best = max(rows[k]["recall@1"] for k in ("image", "majority", "random (20 draws)"))
    probe = next(v["recall@1"] for k, v in rows.items() if k.startswith("probe (w="))
    print(
        f"\ncanary: probe recall@1 {probe:.3f}, best baseline {best:.3f}, "
        f"gap {probe - best:+.3f} ({'ok' if abs(probe - best) <= 0.05 else 'FAIL'}: |gap| <= 0.05)"
    )
    if args.json:
        args.json.write_text(json.dumps({"real": real, "canary": canary}, indent=2))


if __name__ == "__main__":
    main()
