"""Report figures as PNG bytes (matplotlib, Agg backend, nothing shown on screen)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from indexer.errors import MissingExtraError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from indexer.evaluation.results import Evaluation

BASELINE_STYLE = {
    "majority": {"color": "#7f7f7f", "linestyle": "--"},
    "random": {"color": "#bcbd22", "linestyle": ":"},
}


def _figure(width: float, height: float) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # an optional extra: the service image leaves it out
        raise MissingExtraError(
            "matplotlib", extra="reports", purpose="the report's plots"
        ) from exc

    # A bare Figure (no pyplot) uses the Agg canvas and keeps no global state between reports.
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def recall_curves(ev: Evaluation) -> bytes:
    """recall@k, hit@k, precision@k, nDCG@k against k: one line per run, baselines dashed."""
    fig = _figure(10, 7)
    axes = fig.subplots(2, 2)
    ks = list(ev.ks)
    for ax, metric in zip(axes.flat, ("recall", "hit", "precision", "ndcg"), strict=True):
        for run in ev.runs:
            ax.plot(ks, [run.summary[f"{metric}@{k}"] for k in ks], marker="o", label=run.name)
        for name, base in ev.baselines.items():
            values = [base.summary[f"{metric}@{k}"] for k in ks]
            ax.plot(ks, values, label=f"{name} baseline", **BASELINE_STYLE[name])
        ax.set_title(f"{metric}@k")
        ax.set_xlabel("k")
        ax.set_xticks(ks)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    return _png(fig)


def per_label_recall(ev: Evaluation) -> bytes:
    """Grouped bars: recall@vote_k per label for each run and both baselines (support in ticks)."""
    k = ev.vote_k
    series: list[tuple[str, dict[str, tuple[float, int]], dict[str, Any]]] = [
        (run.name, run.per_label_recall[k], {}) for run in ev.runs
    ]
    series += [
        (
            f"{n} baseline",
            b.per_label_recall[k],
            {"color": BASELINE_STYLE[n]["color"], "hatch": "//"},
        )
        for n, b in ev.baselines.items()
    ]
    labels = [lb for lb in ev.labels if lb in series[0][1]]
    fig = _figure(max(6.0, 1.1 * len(labels) + 2), 4.5)
    ax = fig.subplots()
    width = 0.8 / max(1, len(series))
    x = np.arange(len(labels))
    for i, (name, values, style) in enumerate(series):
        heights = [values.get(lb, (0.0, 0))[0] for lb in labels]
        ax.bar(x + i * width - 0.4 + width / 2, heights, width, label=name, **style)
    ticks = [f"{lb}\n(n={series[0][1][lb][1]})" for lb in labels]
    ax.set_xticks(x, ticks, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"per-label recall@{k}")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def confusion(matrix: np.ndarray, labels: Sequence[str], title: str) -> bytes:
    """Row-normalised heatmap of true label -> kNN-vote predicted label, raw counts annotated."""
    cols = [*labels, "(none)"]
    support = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, np.maximum(support, 1))
    fig = _figure(max(5.0, 0.7 * len(cols) + 2.5), max(4.0, 0.55 * len(labels) + 2))
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            if matrix[i, j]:
                color = "white" if share[i, j] > 0.6 else "black"
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(len(cols)), cols, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted by kNN vote")
    ax.set_ylabel("true label")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, label="share of queries with the true label")
    return _png(fig)


def sweep(ev: Evaluation, metrics: Sequence[str]) -> bytes | None:
    """Metric against fusion weight a for each swept mode; image mode and baselines as lines."""
    swept = [r for r in ev.runs if r.mode != "image" and r.alpha is not None]
    if not swept:
        return None
    fig = _figure(4.2 * len(metrics), 3.8)
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    for ax, metric in zip(axes, metrics, strict=True):
        for mode in dict.fromkeys(r.mode for r in swept):
            runs = sorted((r for r in swept if r.mode == mode), key=lambda r: r.alpha or 0.0)
            ax.plot([r.alpha for r in runs], [r.summary[metric] for r in runs], "o-", label=mode)
        for run in ev.runs:
            if run.mode == "image":
                ax.axhline(run.summary[metric], color="#1f77b4", linewidth=1, label="image")
        for name, base in ev.baselines.items():
            ax.axhline(base.summary[metric], label=f"{name} baseline", **BASELINE_STYLE[name])
        ax.set_xlabel("fusion weight a (image share)")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return _png(fig)


def reliability_diagram(estimates: dict[str, Any]) -> bytes:
    """The label head's calibration: mean predicted probability vs observed frequency per bin
    (all query x label pairs; marker area ~ pair count), the diagonal is perfect calibration."""
    fig = _figure(5, 5)
    ax = fig.subplots()
    bins = estimates["reliability"]
    x = [b["mean_probability"] for b in bins]
    y = [b["frequency"] for b in bins]
    total = max(1, sum(b["count"] for b in bins))
    sizes = [20 + 400 * b["count"] / total for b in bins]
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="calibrated")
    ax.plot(x, y, color="tab:blue", linewidth=1)
    ax.scatter(x, y, s=sizes, color="tab:blue", label=f"head ({estimates['source']})")
    head = estimates["head"]
    ax.set_title(f"Label estimates: Brier {head['brier']:.4f}, ECE {head['ece']:.4f}")
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed frequency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def coverage_plot(levels: list[dict[str, Any]]) -> bytes:
    """Conformal label sets: empirical coverage (with its interval over photos) against the
    promised level, the diagonal is the promise; mean set size written beside each point."""
    fig = _figure(5, 5)
    ax = fig.subplots()
    x = [c["level"] for c in levels]
    y = [c["coverage"] for c in levels]
    err = [[c["coverage"] - c["low"] for c in levels], [c["high"] - c["coverage"] for c in levels]]
    ax.plot([0.75, 1], [0.75, 1], color="grey", linestyle="--", linewidth=1, label="promised")
    ax.errorbar(x, y, yerr=err, color="tab:blue", marker="o", capsize=3, label="observed")
    for c in levels:
        ax.annotate(
            f"{c['mean_size']:.1f} labels",
            (c["level"], c["coverage"]),
            fontsize=8,
            xytext=(6, -12),
            textcoords="offset points",
        )
    ax.set_title("Conformal label sets: coverage of all true labels")
    ax.set_xlabel("promised level (1 - alpha)")
    ax.set_ylabel("share of queries with every label in the set")
    ax.set_xlim(0.75, 1)
    ax.set_ylim(0.6, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)
