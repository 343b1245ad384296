"""Issue 11: two other ways to learn from the labels, leave-one-out on the shared DINOv3 crops.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/probe_heads.py``. Both are nested like the
shipped head: what scores a query never saw the query's photo.

- ``prototype head``: SimpleShot-style nearest class mean — vectors centred on the training mean
  and L2-normalised, a label's score is the cosine to the mean of its positives — then Platt
  calibration on 5 inner group folds, as the shipped logistic head. Fewer parameters than a
  logistic regression for labels with 2-13 positives.
- ``learned weight``: the probe weight learned from the catalogue instead of fixed at 1: a
  logistic regression of "candidate shares a label with the query" on (cosine, Σ p) over each
  catalogue row's top-50 candidates from other photos, the probabilities out-of-fold; the weight
  is the ratio of the two coefficients. Learned per held-out photo on the other 19.

Prints recall@1, macro label recall@1 and each one's difference to ``image`` with the paired
group-bootstrap interval that ``visrag evaluate`` reports.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.stats import rankdata

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.probe_experiment import DATA, image_rankings, load, pools, score  # noqa: E402
from indexer.evaluation.uncertainty import paired_intervals  # noqa: E402
from indexer.labels.calibration import fit_platt, group_folds, sigmoid  # noqa: E402
from indexer.labels.head import _fit_linear, fit_label_head  # noqa: E402
from indexer.retrieval.probe import probe_order  # noqa: E402

Scorer = Callable[[np.ndarray], np.ndarray]


def prototype(xt: np.ndarray, yt: np.ndarray) -> Scorer:
    m = xt.mean(0)
    a = xt - m
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    c = (yt.T @ a) / np.maximum(yt.sum(0)[:, None], 1)
    c /= np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)

    def scores(q: np.ndarray) -> np.ndarray:
        q = q - m
        return (q / np.linalg.norm(q, axis=1, keepdims=True)) @ c.T

    return scores


def logistic(xt: np.ndarray, yt: np.ndarray) -> Scorer:
    return _fit_linear(xt, yt, 1e-2).scores


def calibrated(fit: Callable[[np.ndarray, np.ndarray], Scorer], x, y, groups) -> tuple:
    """(scorer of calibrated probabilities, out-of-fold probabilities of the training rows)."""
    folds = group_folds(groups, 5, seed=0)
    oof = np.zeros_like(y)
    for f in range(int(folds.max()) + 1):
        train = folds != f
        oof[~train] = fit(x[train], y[train])(x[~train])
    platt = fit_platt(oof, y)
    final = fit(x, y)
    return (
        lambda q: sigmoid(platt[:, 0] * final(q) + platt[:, 1]),
        sigmoid(platt[:, 0] * oof + platt[:, 1]),
    )


def learned_weight(x, y, oof_proba, groups, n: int = 50) -> float:
    g = np.asarray(groups)
    sims = x @ x.T
    feats, target = [], []
    for i in range(len(x)):
        rows = np.flatnonzero(g != g[i])
        for j in rows[np.argsort(-sims[i, rows], kind="stable")[:n]]:
            feats.append((sims[i, j], y[j] @ oof_proba[i], 1.0))
            target.append(float((y[i] * y[j]).sum() > 0))
    f, t = np.array(feats), np.array(target)

    def loss(b: np.ndarray) -> tuple[float, np.ndarray]:
        z = f @ b
        return float((np.logaddexp(0, z) - t * z).mean()), f.T @ (sigmoid(z) - t) / len(t)

    b = minimize(loss, np.zeros(3), jac=True, method="L-BFGS-B").x
    return float(max(b[1], 0.0) / max(b[0], 1e-9))


def auc(truth: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties averaged)."""
    ranks = rankdata(score)
    pos = truth > 0
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def main() -> None:
    x, sets, groups, ids = load(DATA)
    labels = sorted(set().union(*sets))
    y = np.array([[lb in s for lb in labels] for s in sets], np.float64)
    g = np.asarray(groups)
    cands = image_rankings(x, ids, pools(groups), 50)
    rankings: dict[str, list[list[int]]] = {"image": cands}
    names = ("prototype head (w=1)", "learned weight")
    order: dict[str, list[list[int]]] = {name: [[] for _ in sets] for name in names}
    weights = []
    held_proba = {name: np.zeros_like(y) for name in names}
    for photo in sorted(set(groups)):
        held = np.flatnonzero(g == photo)
        rest = g != photo
        train_groups = [s for s in groups if s != photo]
        proto, _ = calibrated(prototype, x[rest], y[rest], train_groups)
        _, oof = calibrated(logistic, x[rest], y[rest], train_groups)
        w = learned_weight(x[rest], y[rest], oof, train_groups)
        weights.append(w)
        head = fit_label_head(x[rest], y[rest], labels, train_groups)
        for name, proba, weight in (
            ("prototype head (w=1)", proto(x[held]), 1.0),
            ("learned weight", head.predict_proba(x[held]), w),
        ):
            held_proba[name][held] = proba
            for row, i in enumerate(held):
                top = cands[i]
                cand_ids = [ids[j] for j in top]
                o = probe_order(cand_ids, x[top] @ x[i], y[top], proba[row], weight=weight)
                order[name][i] = [top[k] for k in o]
    rankings.update(order)
    as_sets = {n: [[sets[j] for j in r] for r in rs] for n, rs in rankings.items()}
    spread = paired_intervals(sets, groups, as_sets, [(n, "image") for n in order], [1])
    interval = {
        (c["run"], c["metric"]): f"{c['difference']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]"
        for c in spread["comparisons"]
    }
    print("| run | recall@1 | macro@1 | recall@1 - image (95 %) | macro@1 - image (95 %) |")
    print("|---|---|---|---|---|")
    for name, ranking in rankings.items():
        s = score(sets, ranking)
        print(
            f"| {name} | {s['recall@1']:.3f} | {s['label_recall_macro@1']:.3f} | "
            f"{interval.get((name, 'recall@1'), '')} | "
            f"{interval.get((name, 'label_recall_macro@1'), '')} |"
        )
    print(f"\nlearned weights per held-out photo: {min(weights):.2f} to {max(weights):.2f}")
    print("\nper-label AUC of the held-out probabilities (labels on 2+ crops):")
    for name, head_name in zip(names, ("prototype head", "logistic head (shipped)"), strict=True):
        cols = [j for j in range(len(labels)) if 1 < y[:, j].sum() < len(y)]
        aucs = ", ".join(f"{labels[j]} {auc(y[:, j], held_proba[name][:, j]):.2f}" for j in cols)
        print(f"- {head_name}: {aucs}")


if __name__ == "__main__":
    main()
