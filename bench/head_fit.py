"""How long the label head takes to refit as the catalogue grows: ``python -m bench.head_fit``.

The head refits on every catalogue change (build, import, add, remove; HTTP writes are coming),
so its fit must stay bounded. It is cosine-kernel ridge stored as primal weights: the fit is
O(n·d²) (one d x d Gram matrix, each of the 10 group folds' a difference of it, one d x d
eigendecomposition per fold for all strengths), plus the probe-weight choice over at most 2000
catalogue rows (:data:`indexer.labels.selection.MAX_QUERIES`), O(2000·n·d).

Synthetic catalogue: ``n`` unit vectors of dimension ``d`` around 8 label centres (one frequent
label, as in the real crops), groups of 10 rows. Prints the wall time of
:func:`indexer.labels.head.fit_label_head` per size beside the baseline of the same run: one
``xᵀx`` GEMM of the same matrix (the floor of any O(n·d²) fit).

Run: ``OMP_NUM_THREADS=1 python -m bench.head_fit --sizes 1000,10000,100000 --dim 1024``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.machine import cpu_model
from indexer.labels.head import fit_label_head


def synthetic(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    n_labels = 8
    prior = np.array([0.8, *([0.2 / (n_labels - 1)] * (n_labels - 1))])
    label = rng.choice(n_labels, size=n, p=prior)
    centres = rng.normal(size=(n_labels, d))
    x = centres[label] * 0.1 + rng.normal(size=(n, d)) / np.sqrt(d)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.eye(n_labels)[label]
    return x, y, [f"g{i // 10}" for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--dim", type=int, default=1024)
    args = ap.parse_args()
    print(f"# label head fit time, d = {args.dim}; {cpu_model()}")
    print("\n| items | fit (s) | baseline: one xᵀx GEMM (s) | ratio | chosen strength |")
    print("|---|---|---|---|---|")
    for n in (int(v) for v in args.sizes.split(",")):
        x, y, groups = synthetic(n, args.dim)
        labels = [f"l{j}" for j in range(y.shape[1])]
        t0 = time.perf_counter()
        _ = x.T @ x
        gemm = time.perf_counter() - t0
        t0 = time.perf_counter()
        head = fit_label_head(x, y, labels, groups)
        fit = time.perf_counter() - t0
        print(f"| {n} | {fit:.2f} | {gemm:.3f} | {fit / gemm:.0f} | {head.info['reg']:g} |")


if __name__ == "__main__":
    main()
