"""A multi-label linear head on image vectors, calibrated out-of-fold by group.

The head answers "which canonical labels does this image likely carry, and how sure are we" from
the catalogue's own verified labels. It is numpy + scipy's L-BFGS-B (float64, CPU,
deterministic; scipy came with sentence-transformers already — phase 1's torch L-BFGS solved the
same convex problem but cost seconds of per-step overhead on the tiny catalogues every write
now refits):

1. **Features.** Vectors are centred on the training mean and scaled so the mean row norm is 1;
   the regularisation strength then means the same thing for any backbone width.
2. **Model.** One logistic regression per label, fitted jointly: class-balanced binary
   cross-entropy (positives and negatives of each label weigh half the loss each, so a label on 4
   of 239 items is not drowned by the majority) plus ``reg/2 · ||W||²``. ``no_damage`` is a label
   like the others. A label without a positive (or without a negative) in the training set gets
   no weights: its score is constant and its probability is its (smoothed) training prior.
3. **Calibration.** Balanced training moves every label's implicit prior to 1/2, so raw outputs
   are not probabilities. Platt scaling per label (``p = σ(a·s + b)``) fitted on *out-of-fold*
   scores, folds over groups (the source image: crops of one photo never sit on both sides), with
   Platt's smoothed targets ``(N₊+1)/(N₊+2)`` and ``1/(N₋+2)``. Platt (2 parameters per label) is
   chosen over isotonic regression because the rare labels have 2-13 positives: isotonic would
   overfit them into steps; the smoothed targets keep a label seen once from reaching 0 or 1.
   The final weights are refitted on all rows and the calibration maps their scores.

:func:`cross_fit_proba` gives every row probabilities from a head that never saw its group — the
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
from models.errors import VisragError

F64 = npt.NDArray[np.float64]
DEFAULT_REG = 1e-2
DEFAULT_FOLDS = 5


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

    def scores(self, vectors: npt.ArrayLike) -> F64:
        """Uncalibrated per-label logits of the balanced model, (n, L)."""
        x = _as_matrix(vectors, self.mean.shape[0])
        return ((x - self.mean) * self.scale) @ self.weights + self.bias

    def predict_proba(self, vectors: npt.ArrayLike) -> F64:
        """Calibrated probability of each label, (n, L), columns in ``labels`` order."""
        s = self.scores(vectors)
        return sigmoid(self.platt[:, 0] * s + self.platt[:, 1])

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
            "model": "logistic regression per label, class-balanced, L2",
            "calibration": "platt per label, out-of-fold by group, smoothed targets",
            **dict(self.info),
        }

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, npt.ArrayLike], description: Mapping[str, Any]
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
    reg: float = DEFAULT_REG,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
) -> LabelHead:
    """Fit the head on ``vectors`` (n, d) and multi-hot ``label_matrix`` (n, L).

    Args:
        vectors: image vectors, one row per item.
        label_matrix: 0/1 (n, L), column j = ``label_ids[j]``; ``no_damage`` is a column too.
        label_ids: the canonical label of each column.
        groups: one group per row (e.g. the source image); calibration folds never split one.
        reg: L2 strength on the weights (features have mean row norm 1).
        folds: group folds for the out-of-fold calibration (fewer if there are fewer groups).
        seed: fixes the fold assignment; the result is deterministic for a seed.
    """
    start = time.perf_counter()
    x, y, g = _check(vectors, label_matrix, label_ids, groups)
    assignment = group_folds(g, folds, seed=seed)
    k = int(assignment.max()) + 1
    oof = np.zeros_like(y)
    for f in range(k):
        train = assignment != f
        oof[~train] = _fit_linear(x[train], y[train], reg).scores(x[~train])
    final = _fit_linear(x, y, reg)
    platt = fit_platt(oof, y)
    info = {
        "reg": float(reg),
        "class_weight": "balanced",
        "folds": k,
        "seed": int(seed),
        "training_size": int(x.shape[0]),
        "groups": len(set(g)),
        "dim": int(x.shape[1]),
        "positives": {lb: int(n) for lb, n in zip(label_ids, y.sum(0), strict=True)},
        "fit_seconds": round(time.perf_counter() - start, 4),
    }
    return LabelHead(
        labels=tuple(str(lb) for lb in label_ids),
        mean=final.mean,
        scale=final.scale,
        weights=final.weights,
        bias=final.bias,
        platt=platt,
        prior=y.mean(0),
        info=info,
    )


def cross_fit_proba(
    vectors: npt.ArrayLike,
    label_matrix: npt.ArrayLike,
    groups: Sequence[str],
    folds: int | None = None,
    *,
    reg: float = DEFAULT_REG,
    inner_folds: int = DEFAULT_FOLDS,
    seed: int = 0,
) -> F64:
    """(n, L) probabilities, each row's from a head fitted without the row's group.

    ``folds=None`` leaves one group out at a time (what leave-one-out evaluation needs); an
    integer uses that many group folds. Each fold's head is calibrated on its own inner folds.
    """
    x, y, g = _check(
        vectors, label_matrix, [str(j) for j in range(np.shape(label_matrix)[1])], groups
    )
    n_groups = len(set(g))
    assignment = group_folds(g, n_groups if folds is None else folds, seed=seed)
    out = np.zeros_like(y)
    ids = [str(j) for j in range(y.shape[1])]
    for f in range(int(assignment.max()) + 1):
        held = assignment == f
        head = fit_label_head(
            x[~held],
            y[~held],
            ids,
            [s for s, h in zip(g, held, strict=True) if not h],
            reg=reg,
            folds=inner_folds,
            seed=seed,
        )
        out[held] = head.predict_proba(x[held])
    return out


@dataclass(frozen=True)
class _Linear:
    mean: F64
    scale: float
    weights: F64
    bias: F64

    def scores(self, x: F64) -> F64:
        return ((x - self.mean) * self.scale) @ self.weights + self.bias


def _fit_linear(x: F64, y: F64, reg: float) -> _Linear:
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
