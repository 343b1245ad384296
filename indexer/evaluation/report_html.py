"""The self-contained ``report.html`` of an evaluation, from the Jinja2 template beside this module.

The page embeds its figures and thumbnails as base64 ``data:`` URIs and loads nothing else, so it
can be mailed or opened offline. The template is autoescaped: ids, labels, run names and warnings
come from datasets and command lines and are never trusted as markup.
"""

from __future__ import annotations

import base64
import io
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from indexer.evaluation import plots
from indexer.evaluation.localisation import (
    LOCALISATION_HEADER,
    localisation_cells,
    localisation_title,
)
from indexer.evaluation.results import Evaluation, QueryOutcome, RunResult, summary_rows
from indexer.evaluation.uncertainty import INTERVAL_HEADER, interval_cells, interval_title
from indexer.evaluation.verdict import verdict_lines

logger = logging.getLogger(__name__)

GALLERY_SIZE = 4
THUMB_PX = 96


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("indexer.evaluation", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("report.html.j2")


def fmt(value: Any) -> str:
    return "—" if value is None else f"{value:.3f}"


def _png(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _thumb(path: Path | None) -> str:
    """A small base64 JPEG ``data:`` URI of an image file, or '' when there is no readable one."""
    if path is None or not Path(path).is_file():
        return ""
    try:
        from PIL import Image, ImageOps

        with Image.open(path) as opened:
            im = ImageOps.exif_transpose(opened).convert("RGB")
            im.thumbnail((THUMB_PX, THUMB_PX))
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=80)
    except (OSError, ValueError) as exc:
        logger.warning("no thumbnail for %s: %s", path, exc)
        return ""
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _gallery(ev: Evaluation, run: RunResult) -> list[dict[str, Any]]:
    """The best and worst queries of a run by nDCG at the vote k, with their neighbours."""
    k = ev.vote_k
    key = f"ndcg@{k}"

    def score(o: QueryOutcome) -> tuple[float, float, str]:
        return (o.metrics[key], o.metrics[f"recall@{k}"], o.query.id)

    ranked = sorted(run.outcomes, key=score)
    worst = ranked[:GALLERY_SIZE]
    shown = {id(o) for o in worst}
    best = [o for o in reversed(ranked[-GALLERY_SIZE:]) if id(o) not in shown]
    return [
        {
            "title": f"{title} queries by {key} ({run.name})",
            "queries": [
                {
                    "id": o.query.id,
                    "thumb": _thumb(o.query.image_path),
                    "labels": sorted(set(o.query.labels) or {"no_damage"}),
                    "score": f"{key}={o.metrics[key]:.2f}",
                    "predicted": sorted(o.predicted),
                    "neighbours": [
                        {
                            "rank": rank,
                            "score": f"{n.score:.3f}",
                            "id": n.id,
                            "labels": list(n.labels),
                            "thumb": _thumb(n.image),
                        }
                        for rank, n in enumerate(o.neighbours[:k], 1)
                    ],
                }
                for o in outcomes
            ],
        }
        for title, outcomes in (("Best", best), ("Worst", worst))
    ]


def _figures(ev: Evaluation) -> list[dict[str, Any]]:
    k = ev.vote_k

    def figure(title: str, alt: str, png: bytes) -> dict[str, Any]:
        return {"title": title, "images": [{"alt": alt, "src": _png(png)}]}

    figures = [figure("Curves over k", "metrics over k", plots.recall_curves(ev))]
    sweep = plots.sweep(ev, [f"recall@{k}", f"ndcg@{k}", f"knn_macro_f1@{k}"])
    if sweep is not None:
        figures.append(figure("Fusion-weight sweep", "fusion weight sweep", sweep))
    figures.append(figure(f"Per-label recall@{k}", "labels", plots.per_label_recall(ev)))
    confusion = []
    for run in ev.runs:
        if run.confusion is not None and run.knn is not None:
            title = f"{run.name}: micro F1 {run.knn.micro_f1:.3f}, macro F1 {run.knn.macro_f1:.3f}"
            png = plots.confusion(run.confusion, ev.labels, title)
            confusion.append({"alt": "confusion", "src": _png(png)})
    figures.append({"title": f"kNN-vote confusion (k={k})", "images": confusion})
    if ev.estimates is not None:
        png = plots.reliability_diagram(ev.estimates)
        figures.append(figure("Label estimates: reliability", "reliability diagram", png))
        if ev.estimates.get("label_sets"):
            png = plots.coverage_plot(ev.estimates["label_sets"])
            figures.append(figure("Conformal label sets: coverage", "coverage plot", png))
    return figures


def render_html(ev: Evaluation, metric_keys: list[str]) -> str:
    """The report page: setting, warnings, metrics beside baselines, figures, latency, gallery."""
    names = [r.name for r in ev.runs]
    rows = [
        {
            "metric": row["metric"],
            "cells": [fmt(row[n]) for n in names],
            "majority": fmt(row["majority"]),
            "random": fmt(row["random"]),
        }
        for row in summary_rows(ev, metric_keys)
    ]
    latency = [
        [run.name, stage, f"{v['p50_ms']:.3f}", f"{v['p95_ms']:.3f}", f"{v['mean_ms']:.3f}", v["n"]]
        for run in ev.runs
        for stage, v in run.latency.items()
    ]
    return _template().render(
        verdict=verdict_lines(ev),
        setting=[(k, str(v)) for k, v in ev.setting.items()],
        warnings=ev.warnings,
        names=names,
        metric_rows=rows,
        figures=_figures(ev),
        latency=latency,
        intervals=(
            None
            if ev.uncertainty is None
            else {
                "title": interval_title(ev.uncertainty),
                "header": INTERVAL_HEADER,
                "rows": interval_cells(ev.uncertainty),
            }
        ),
        gallery=_gallery(ev, ev.runs[0]),
        localisation=(
            None
            if ev.localisation is None
            else {
                "title": localisation_title(ev.localisation),
                "skipped": ev.localisation.get("skipped"),
                "header": LOCALISATION_HEADER,
                "rows": localisation_cells(ev.localisation),
            }
        ),
    )
