"""A multi-label head on image vectors: cosine-kernel ridge, calibrated out-of-fold by group.

The head answers "which canonical labels does this image likely carry, and how sure are we" from
the catalogue's own verified labels (numpy, float64, CPU, deterministic):

1. **Model.** Kernel ridge regression of the 0/1 label matrix on the vectors with the cosine
   kernel (rows L2-normalised, no intercept). The kernel is linear on unit rows, so the model is
   stored as primal weights (d, L) and fitted from the smaller Gram matrix
   (:func:`ridge_path`): O(n·d²), bounded as the catalogue grows. ``no_damage`` is a label like
   the others. Its raw output (an estimate of each 0/1 label) is what mode probe compares, after
   the prior correction of :mod:`indexer.labels.agreement`.
2. **Choice.** The ridge strength and probe's weight are chosen from the catalogue alone, on
   out-of-fold estimates over 10 group folds (:mod:`indexer.labels.selection`).
3. **Calibration.** Platt scaling per label (``p = σ(a·s + b)``) fitted on those out-of-fold
   scores, folds over groups (the source image: crops of one photo never sit on both sides), with
   Platt's smoothed targets ``(N₊+1)/(N₊+2)`` and ``1/(N₋+2)``: the rare labels have 2-13
   positives, isotonic regression would overfit them into steps. These calibrated probabilities
   are the ``label_estimates`` the service shows, and their out-of-fold values calibrate the
   conformal label sets (:mod:`indexer.labels.conformal`).

Measured against a class-balanced logistic head and a prior-corrected kNN on both shared vector
sets (``python -m bench.probe families``); the logistic fit (:func:`fit_logistic`) stays for that
comparison. :func:`cross_fit_heads` gives every row a head that never saw its group — the
leakage-free estimate the evaluation needs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize

from indexer.labels.calibration import fit_platt, group_folds, sigmoid
from indexer.labels.conformal import conformity_scores, grid_threshold, label_set, thresholds
from indexer.labels.selection import choose
from models.errors import VisragError

F64 = npt.NDArray[np.float64]
DEFAULT_REG = 1e-2  # the logistic head's (bench comparison)
DEFAULT_FOLDS = 10
REGS = (0.03, 0.1, 0.3, 1.0, 3.0)  # ridge strengths (unit rows: the kernel's diagonal is 1)
WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 16.0)  # probe weights


class LabelHeadError(VisragError):
    """The head cannot be fitted or loaded from the data given (shapes, too few groups)."""


@dataclass(frozen=True)
class LabelHead:
    """A fitted head: ``predict_proba(vectors) -> (n, L)`` calibrated label probabilities."""

    labels: tuple[str, ...]
    mean: F64  # (d,) training mean
    scale: float  # 1 / mean norm of the centred training rows
    weights: F64  # (d, L)
    bias: F64  # (L,)
    platt: F64  # (L, 2): a, b of p = sigmoid(a * score + b)
    prior: F64  # (L,) training label frequencies
    info: Mapping[str, Any]  # reg, folds, seed, training size, groups, fit seconds, positives
    weight: float = 1.0  # mode probe's weight, chosen with the fit (the manifest records it)

    def scores(self, vectors: npt.ArrayLike) -> F64:
        """Uncalibrated per-label estimates, (n, L) (a head written before ridge: logits)."""
        x = _as_matrix(vectors, self.mean.shape[0])
        if self.info.get("rows") == "unit":
            x = unit_rows(x)
        return ((x - self.mean) * self.scale) @ self.weights + self.bias

    def predict_proba(self, vectors: npt.ArrayLike) -> F64:
        """Calibrated probability of each label, (n, L), columns in ``labels`` order."""
        s = self.scores(vectors)
        return sigmoid(self.platt[:, 0] * s + self.platt[:, 1])

    def label_sets(self, vectors: npt.ArrayLike, alpha: float) -> npt.NDArray[np.bool_]:
        """(n, L) conformal label sets: all true labels inside with probability >= 1 - alpha
        over photos like the catalogue's (:mod:`indexer.labels.conformal`)."""
        cut = grid_threshold(list(self.info.get("conformal", [])), alpha)
        return label_set(self.predict_proba(vectors), cut)

    def to_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The numeric state as plain arrays (store as .npy; no pickle needed)."""
        return {
            "mean": self.mean.copy(),
            "scale": np.asarray(self.scale, np.float64),
            "weights": self.weights.copy(),
            "bias": self.bias.copy(),
            "platt": self.platt.copy(),
            "prior": self.prior.copy(),
        }

    def describe(self) -> dict[str, Any]:
        """JSON-able description: labels, model, regularisation, calibration, training size."""
        return {
            "labels": list(self.labels),
            "model": "cosine-kernel ridge per label (primal weights on unit rows)",
            "calibration": "platt per label, out-of-fold by group, smoothed targets",
            **dict(self.info),
        }

    @classmethod
    def from_arrays(
        cls,
        arrays: Mapping[str, npt.ArrayLike],
        description: Mapping[str, Any],
        weight: float = 1.0,
    ) -> LabelHead:
        """Rebuild a head from :meth:`to_arrays` and :meth:`describe` output."""
        try:
            labels = tuple(str(x) for x in description["labels"])
            head = cls(
                labels=labels,
                mean=np.asarray(arrays["mean"], np.float64),
                scale=float(np.asarray(arrays["scale"])),
                weights=np.asarray(arrays["weights"], np.float64),
                bias=np.asarray(arrays["bias"], np.float64),
                platt=np.asarray(arrays["platt"], np.float64),
                prior=np.asarray(arrays["prior"], np.float64),
                info={k: v for k, v in description.items() if k not in _DESCRIBED},
                weight=float(weight),
            )
        except KeyError as exc:
            raise LabelHeadError(f"label head state lacks {exc}") from None
        n_labels, dim = len(labels), head.mean.shape[0]
        if (
            head.weights.shape != (dim, n_labels)
            or head.bias.shape != (n_labels,)
            or head.platt.shape != (n_labels, 2)
            or head.prior.shape != (n_labels,)
        ):
            raise LabelHeadError("label head arrays do not match its labels and dimension")
        return head


_DESCRIBED = ("labels", "model", "calibration")


def fit_label_head(
    vectors: npt.ArrayLike,
    label_matrix: npt.ArrayLike,
    label_ids: Sequence[str],
    groups: Sequence[str],
    *,
    reg: float | None = None,
    weight: float | None = None,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
) -> LabelHead:
    """Fit the head on ``vectors`` (n, d) and multi-hot ``label_matrix`` (n, L).

    Args:
        vectors: image vectors, one row per item (L2-normalised here: the kernel is the cosine).
        label_matrix: 0/1 (n, L), column j = ``label_ids[j]``; ``no_damage`` is a column too.
        label_ids: the canonical label of each column.
        groups: one group per row (e.g. the source image); folds never split one.
        reg: the ridge strength; None chooses it from :data:`REGS` on the catalogue's own
            out-of-fold estimates (with the probe weight, see :mod:`indexer.labels.selection`).
        weight: mode probe's weight; None chooses it from :data:`WEIGHTS` the same way.
        folds: group folds for the out-of-fold estimates (fewer if there are fewer groups).
        seed: fixes the fold assignment; the result is deterministic for a seed.
    """
    start = time.perf_counter()
    x, y, g = _check(vectors, label_matrix, label_ids, groups)
    x = unit_rows(x)
    assignment = group_folds(g, folds, seed=seed)
    k = int(assignment.max()) + 1
    regs = REGS if reg is None else (float(reg),)
    oof = {r: np.zeros_like(y) for r in regs}
    big = x.shape[0] > x.shape[1]  # above d rows: one Gram matrix, each fold's is a difference
    moments = (x.T @ x, x.T @ y) if big else None
    for f in range(k):
        train = assignment != f
        if moments is not None:
            xf, yf = x[~train], y[~train]
            path = ridge_moments(moments[0] - xf.T @ xf, moments[1] - xf.T @ yf, regs)
        else:
            path = ridge_path(x[train], y[train], regs)
        for r, w in zip(regs, path, strict=True):
            oof[r][~train] = x[~train] @ w
    prior = y.mean(0)
    weights = WEIGHTS if weight is None else (float(weight),)
    chosen_reg, chosen_weight = choose(x, y, g, oof, prior, weights, seed=seed)
    final = (
        ridge_moments(*moments, (chosen_reg,))
        if moments is not None
        else ridge_path(x, y, (chosen_reg,))
    )[0]
    platt = fit_platt(oof[chosen_reg], y)
    oof_proba = sigmoid(platt[:, 0] * oof[chosen_reg] + platt[:, 1])
    info = {
        "reg": float(chosen_reg),
        "reg_grid": list(regs),
        "weight_grid": list(weights),
        "rows": "unit",
        "folds": k,
        "seed": int(seed),
        "training_size": int(x.shape[0]),
        "groups": len(set(g)),
        "dim": int(x.shape[1]),
        "positives": {lb: int(n) for lb, n in zip(label_ids, y.sum(0), strict=True)},
        "conformal": thresholds(conformity_scores(oof_proba, y)),
        "fit_seconds": round(time.perf_counter() - start, 4),
    }
    return LabelHead(
        labels=tuple(str(lb) for lb in label_ids),
        mean=np.zeros(x.shape[1]),
        scale=1.0,
        weights=final,
        bias=np.zeros(y.shape[1]),
        platt=platt,
        prior=prior,
        info=info,
        weight=float(chosen_weight),
    )


def cross_fit_heads(
    vectors: npt.ArrayLike,
    label_matrix: npt.ArrayLike,
    groups: Sequence[str],
    folds: int | None = None,
    *,
    seed: int = 0,
    **fit: Any,
) -> tuple[npt.NDArray[np.int64], list[LabelHead]]:
    """``(fold of each row, one head per fold)``: fold f's head never saw fold f's groups.

    ``folds=None`` leaves one group out at a time (what leave-one-out evaluation needs); an
    integer uses that many group folds. Each head chooses its own strength and probe weight on
    its own training rows (nested), exactly as the catalogue's head does.
    """
    x, y, g = _check(
        vectors, label_matrix, [str(j) for j in range(np.shape(label_matrix)[1])], groups
    )
    assignment = group_folds(g, len(set(g)) if folds is None else folds, seed=seed)
    ids = [str(j) for j in range(y.shape[1])]
    heads = []
    for f in range(int(assignment.max()) + 1):
        held = assignment == f
        rest = [s for s, h in zip(g, held, strict=True) if not h]
        heads.append(fit_label_head(x[~held], y[~held], ids, rest, seed=seed, **fit))
    return assignment, heads


def cross_fit_proba(
    vectors: npt.ArrayLike,
    label_matrix: npt.ArrayLike,
    groups: Sequence[str],
    folds: int | None = None,
    *,
    seed: int = 0,
    **fit: Any,
) -> F64:
    """(n, L) probabilities, each row's from a head fitted without the row's group."""
    x = np.asarray(vectors, np.float64)
    assignment, heads = cross_fit_heads(x, label_matrix, groups, folds, seed=seed, **fit)
    out = np.zeros(np.shape(label_matrix), np.float64)
    for f, head in enumerate(heads):
        out[assignment == f] = head.predict_proba(x[assignment == f])
    return out


def unit_rows(x: F64) -> F64:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.asarray(x / np.where(norm > 0, norm, 1.0), np.float64)


def ridge_path(x: F64, y: F64, regs: Sequence[float]) -> list[F64]:
    """Ridge weights (d, L) of ``y`` on ``x`` for each strength, from one eigendecomposition.

    The kernel is linear on unit rows (the cosine), so kernel ridge and primal ridge are the
    same model: the smaller Gram matrix is decomposed (n x n below d rows, d x d above), which
    bounds the fit by O(n·d²) however large the catalogue grows.
    """
    n, d = x.shape
    if n <= d:
        s, u = np.linalg.eigh(x @ x.T)
        uy = u.T @ y
        return [x.T @ (u @ (uy / (s + r)[:, None])) for r in regs]
    return ridge_moments(x.T @ x, x.T @ y, regs)


def ridge_moments(gram: F64, xy: F64, regs: Sequence[float]) -> list[F64]:
    """Ridge weights from ``xᵀx`` (d, d) and ``xᵀy`` (d, L): one d x d eigendecomposition."""
    s, v = np.linalg.eigh(gram)
    vxy = v.T @ xy
    return [v @ (vxy / (s + r)[:, None]) for r in regs]


@dataclass(frozen=True)
class _Linear:
    mean: F64
    scale: float
    weights: F64
    bias: F64

    def scores(self, x: F64) -> F64:
        return ((x - self.mean) * self.scale) @ self.weights + self.bias


def fit_logistic(x: F64, y: F64, reg: float) -> _Linear:
    """Class-balanced L2 logistic regression for all labels at once (scipy L-BFGS-B, float64)."""
    mean = x.mean(0)
    centred = x - mean
    norm = float(np.linalg.norm(centred, axis=1).mean())
    scale = 1.0 / norm if norm > 0 else 1.0
    n, n_labels = y.shape
    pos = y.sum(0)
    active = (pos > 0) & (pos < n)  # a label without positives or negatives is not learnable
    w_pos = np.where(active, n / (2 * np.maximum(pos, 1)), 0.0)
    w_neg = np.where(active, n / (2 * np.maximum(n - pos, 1)), 0.0)
    sample_w = y * w_pos + (1 - y) * w_neg
    xs = centred * scale
    d = x.shape[1]

    def loss_grad(theta: F64) -> tuple[float, F64]:
        w, b = theta[: d * n_labels].reshape(d, n_labels), theta[d * n_labels :]
        z = xs @ w + b
        # stable binary cross-entropy with logits: log(1 + e^z) - y z
        bce = (sample_w * (np.logaddexp(0.0, z) - y * z)).sum() / n
        r = sample_w * (sigmoid(z) - y) / n
        grad = np.concatenate([(xs.T @ r + reg * w).ravel(), r.sum(0)])
        return float(bce + 0.5 * reg * (w * w).sum()), grad

    solved = minimize(
        loss_grad,
        np.zeros(d * n_labels + n_labels),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 500, "gtol": 1e-9, "ftol": 1e-14},
    )
    weights = solved.x[: d * n_labels].reshape(d, n_labels).copy()
    bias = solved.x[d * n_labels :].copy()
    weights[:, ~active] = 0.0
    bias[~active] = 0.0
    return _Linear(mean, scale, weights, bias)


def _as_matrix(vectors: npt.ArrayLike, dim: int) -> F64:
    x = np.atleast_2d(np.asarray(vectors, np.float64))
    if x.ndim != 2 or x.shape[1] != dim:
        raise LabelHeadError(f"expected vectors of dimension {dim}, got shape {np.shape(vectors)}")
    return x


def _check(
    vectors: npt.ArrayLike,
    label_matrix: npt.ArrayLike,
    label_ids: Sequence[str],
    groups: Sequence[str],
) -> tuple[F64, F64, list[str]]:
    x = np.asarray(vectors, np.float64)
    y = np.asarray(label_matrix, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] != len(groups):
        raise LabelHeadError(
            f"vectors {x.shape}, labels {y.shape} and {len(groups)} groups do not line up"
        )
    if y.shape[1] != len(label_ids):
        raise LabelHeadError(f"{y.shape[1]} label columns but {len(label_ids)} label ids")
    if len(set(groups)) < 2:
        raise LabelHeadError("the label head needs at least two groups to calibrate out of fold")
    if not np.isin(y, (0.0, 1.0)).all():
        raise LabelHeadError("the label matrix must be multi-hot (0/1)")
    return x, y, [str(s) for s in groups]
