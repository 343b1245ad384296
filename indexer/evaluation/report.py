"""Write an evaluation as ``metrics.json``, ``summary.md`` and a self-contained ``report.html``.

The HTML embeds its figures and thumbnails as base64 ``data:`` URIs and loads nothing else, so it
can be mailed or opened offline. Every metric is shown beside the majority-label and
random-retrieval baselines of the same run.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from pathlib import Path
from typing import Any

from indexer.evaluation import plots
from indexer.evaluation.results import Evaluation, QueryOutcome, RunResult, summary_rows

logger = logging.getLogger(__name__)

HEADLINE = ("recall", "hit", "precision", "map", "ndcg", "label_recall_macro")
GALLERY_SIZE = 4
THUMB_PX = 96


def _metric_keys(ev: Evaluation) -> list[str]:
    keys = [f"{m}@{k}" for m in HEADLINE for k in ev.ks]
    keys.append("mrr")
    keys += [f"knn_{a}_f1@{k}" for a in ("micro", "macro") for k in ev.ks]
    return keys


def _run_json(run: RunResult, ev: Evaluation, *, queries: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": run.name, "mode": run.mode, "alpha": run.alpha}
    out["metrics"] = run.summary
    out["per_label_recall"] = {
        str(k): {lb: {"recall": r, "support": n} for lb, (r, n) in v.items()}
        for k, v in run.per_label_recall.items()
    }
    if run.latency:
        out["latency_ms"] = run.latency
    if run.knn is not None:
        out["knn_vote"] = {
            "k": ev.vote_k,
            "micro_precision": run.knn.micro_precision,
            "micro_recall": run.knn.micro_recall,
            "micro_f1": run.knn.micro_f1,
            "macro_f1": run.knn.macro_f1,
            "per_label": {lb: vars(s) for lb, s in run.knn.per_label.items()},
        }
    if run.confusion is not None:
        out["confusion"] = {
            "rows": ev.labels,
            "columns": [*ev.labels, "(none)"],
            "counts": run.confusion.tolist(),
        }
    if queries and run.outcomes:
        out["queries"] = [
            {
                "id": o.query.id,
                "labels": sorted(o.query.labels) or ["no_damage"],
                "predicted": sorted(o.predicted),
                "metrics": o.metrics,
                "pseudo_text": o.pseudo_text,
                "neighbours": [
                    {"id": n.id, "score": round(n.score, 6), "labels": list(n.labels)}
                    for n in o.neighbours
                ],
            }
            for o in run.outcomes
        ]
    return out


def to_json(ev: Evaluation) -> dict[str, Any]:
    return {
        "setting": ev.setting,
        "warnings": ev.warnings,
        "labels": ev.labels,
        "runs": [_run_json(r, ev, queries=True) for r in ev.runs],
        "baselines": {n: _run_json(b, ev, queries=False) for n, b in ev.baselines.items()},
    }


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:.3f}"


def summary_markdown(ev: Evaluation) -> str:
    s = ev.setting
    lines = ["# Retrieval evaluation", ""]
    lines += [f"- **{k}**: {v}" for k, v in s.items()]
    for w in ev.warnings:
        lines.append(f"- **WARNING**: {w}")
    names = [r.name for r in ev.runs]
    lines += ["", "## Metrics beside baselines", ""]
    lines.append("| metric | " + " | ".join([*names, "majority", "random"]) + " |")
    lines.append("|---" * (len(names) + 3) + "|")
    for row in summary_rows(ev, _metric_keys(ev)):
        cells = [_fmt(row[n]) for n in names] + [_fmt(row["majority"]), _fmt(row["random"])]
        lines.append(f"| {row['metric']} | " + " | ".join(cells) + " |")
    k = ev.vote_k
    lines += ["", f"## Per-label recall@{k} (support = queries carrying the label)", ""]
    lines.append("| label | support | " + " | ".join([*names, "majority", "random"]) + " |")
    lines.append("|---" * (len(names) + 4) + "|")
    first = ev.runs[0].per_label_recall[k]
    every = [*ev.runs, ev.baselines["majority"], ev.baselines["random"]]
    for lb in (lb for lb in ev.labels if lb in first):
        cells = [_fmt(r.per_label_recall[k].get(lb, (None, 0))[0]) for r in every]
        lines.append(f"| {lb} | {first[lb][1]} | " + " | ".join(cells) + " |")
    lines += ["", f"## kNN-vote prediction at k={k} (F1 per label)", ""]
    lines.append("| label | " + " | ".join([*names, "majority"]) + " |")
    lines.append("|---" * (len(names) + 2) + "|")
    voters = [r for r in [*ev.runs, ev.baselines["majority"]] if r.knn is not None]
    for lb in ev.labels:
        if not any(lb in r.knn.per_label for r in voters if r.knn):
            continue
        cells = [_fmt(r.knn.per_label[lb].f1) if lb in r.knn.per_label else "—" for r in voters]  # type: ignore[union-attr]
        lines.append(f"| {lb} | " + " | ".join(cells) + " |")
    lines += ["", "## Latency per stage (ms)", ""]
    lines.append("| run | stage | p50 | p95 | mean | n |")
    lines.append("|---|---|---|---|---|---|")
    for run in ev.runs:
        for stage, v in run.latency.items():
            lines.append(
                f"| {run.name} | {stage} | {v['p50_ms']:.3f} | {v['p95_ms']:.3f} | "
                f"{v['mean_ms']:.3f} | {v['n']} |"
            )
    lines.append("")
    return "\n".join(lines)


# -- HTML -----------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}
.base{color:#666}.warn{background:#fee;border:1px solid #c00;padding:.5em 1em}
.q{display:flex;gap:8px;align-items:flex-start;margin:8px 0;border-bottom:1px solid #eee}
.card{width:120px;font-size:11px;overflow-wrap:anywhere}
.card img{width:96px;height:96px;object-fit:cover}
.chip{display:inline-block;background:#eef;border-radius:4px;padding:0 4px;margin:1px}
.ok{background:#dfd}.qcard{background:#f6f6f6}
"""


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _thumb(path: Path | None) -> str:
    """Small base64 JPEG of an image file, or '' when there is no readable image."""
    if path is None or not Path(path).is_file():
        return ""
    try:
        from PIL import Image, ImageOps

        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            im.thumbnail((THUMB_PX, THUMB_PX))
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=80)
    except (OSError, ValueError) as exc:
        logger.warning("no thumbnail for %s: %s", path, exc)
        return ""
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="thumbnail" src="data:image/jpeg;base64,{data}">'


def _chips(labels: Any, query: set[str] | None = None) -> str:
    return "".join(
        f'<span class="chip{" ok" if query and lb in query else ""}">{html.escape(lb)}</span>'
        for lb in labels
    )


def _gallery(ev: Evaluation, run: RunResult) -> str:
    k = ev.vote_k
    key = f"ndcg@{k}"

    def score(o: QueryOutcome) -> tuple[float, float, str]:
        return (o.metrics[key], o.metrics[f"recall@{k}"], o.query.id)

    ranked = sorted(run.outcomes, key=score)
    worst = ranked[:GALLERY_SIZE]
    shown = {id(o) for o in worst}
    best = [o for o in reversed(ranked[-GALLERY_SIZE:]) if id(o) not in shown]
    parts = []
    for title, outcomes in (("Best", best), ("Worst", worst)):
        parts.append(f"<h3>{title} queries by {key} ({html.escape(run.name)})</h3>")
        for o in outcomes:
            qset = set(o.query.labels) or {"no_damage"}
            cells = [
                f'<div class="card qcard">{_thumb(o.query.image_path)}<br>'
                f"<b>query</b> {html.escape(o.query.id)}<br>{_chips(sorted(qset))}<br>"
                f"{key}={o.metrics[key]:.2f}, predicted {_chips(sorted(o.predicted))}</div>"
            ]
            for rank, n in enumerate(o.neighbours[:k], 1):
                cells.append(
                    f'<div class="card">{_thumb(n.image)}<br>#{rank} {n.score:.3f}<br>'
                    f"{html.escape(n.id)}<br>{_chips(n.labels, qset)}</div>"
                )
            parts.append(f'<div class="q">{"".join(cells)}</div>')
    return "\n".join(parts)


def _table(ev: Evaluation) -> str:
    names = [r.name for r in ev.runs]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = [f'<tr><th>metric</th>{head}<th class="base">majority</th><th class="base">random</th>']
    for row in summary_rows(ev, _metric_keys(ev)):
        cells = "".join(f"<td>{_fmt(row[n])}</td>" for n in names)
        rows.append(
            f"<tr><td>{row['metric']}</td>{cells}<td class='base'>{_fmt(row['majority'])}</td>"
            f"<td class='base'>{_fmt(row['random'])}</td></tr>"
        )
    return "<table>" + "\n".join(rows) + "</table>"


def render_html(ev: Evaluation) -> str:
    s = ev.setting
    body = ["<h1>Retrieval evaluation</h1>", "<ul>"]
    body += [f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>" for k, v in s.items()]
    body.append("</ul>")
    body += [f'<p class="warn">WARNING: {html.escape(w)}</p>' for w in ev.warnings]
    body += ["<h2>Metrics beside baselines</h2>", _table(ev)]
    body += ["<h2>Curves over k</h2>", _img(plots.recall_curves(ev), "metrics over k")]
    sweep = plots.sweep(
        ev, [f"recall@{ev.vote_k}", f"ndcg@{ev.vote_k}", f"knn_macro_f1@{ev.vote_k}"]
    )
    if sweep is not None:
        body += ["<h2>Fusion-weight sweep</h2>", _img(sweep, "fusion weight sweep")]
    body += [f"<h2>Per-label recall@{ev.vote_k}</h2>", _img(plots.per_label_recall(ev), "labels")]
    body.append(f"<h2>kNN-vote confusion (k={ev.vote_k})</h2>")
    for run in ev.runs:
        if run.confusion is not None and run.knn is not None:
            title = f"{run.name}: micro F1 {run.knn.micro_f1:.3f}, macro F1 {run.knn.macro_f1:.3f}"
            body.append(_img(plots.confusion(run.confusion, ev.labels, title), "confusion"))
    body.append("<h2>Latency per stage (ms)</h2><table><tr><th>run</th><th>stage</th>")
    body.append("<th>p50</th><th>p95</th><th>mean</th><th>n</th></tr>")
    for run in ev.runs:
        for stage, v in run.latency.items():
            body.append(
                f"<tr><td>{html.escape(run.name)}</td><td>{stage}</td><td>{v['p50_ms']:.3f}</td>"
                f"<td>{v['p95_ms']:.3f}</td><td>{v['mean_ms']:.3f}</td><td>{v['n']}</td></tr>"
            )
    body.append("</table>")
    body += ["<h2>Gallery</h2>", _gallery(ev, ev.runs[0])]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>visrag evaluation</title><style>"
        + CSS
        + "</style></head><body>"
        + "\n".join(body)
        + "</body></html>"
    )


def write_report(ev: Evaluation, out_dir: Path) -> dict[str, Path]:
    """Write the three report files into ``out_dir`` (created if needed); returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "metrics": out / "metrics.json",
        "summary": out / "summary.md",
        "report": out / "report.html",
    }
    paths["metrics"].write_text(json.dumps(to_json(ev), indent=2, sort_keys=False) + "\n", "utf-8")
    paths["summary"].write_text(summary_markdown(ev), "utf-8")
    paths["report"].write_text(render_html(ev), "utf-8")
    return paths


def print_summary(ev: Evaluation, *, console: Any = None) -> None:
    """Headline metrics of every run beside both baselines, and latency, as rich tables."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    for w in ev.warnings:
        console.print(f"[bold red]WARNING[/] {w}")
    table = Table(title=f"{ev.setting['protocol']}: {ev.setting['queries']} queries")
    keys = _metric_keys(ev)
    table.add_column("metric", no_wrap=True, min_width=max(len(key) for key in keys))
    for run in ev.runs:
        table.add_column(run.name, justify="right")
    table.add_column("majority", justify="right", style="dim")
    table.add_column("random", justify="right", style="dim")
    for row in summary_rows(ev, keys):
        cells = [_fmt(row[r.name]) for r in ev.runs]
        table.add_row(row["metric"], *cells, _fmt(row["majority"]), _fmt(row["random"]))
    console.print(table)
    lat = Table(title="latency per stage (ms)")
    for col in ("run", "stage", "p50", "p95", "n"):
        lat.add_column(col, justify="left" if col in ("run", "stage") else "right")
    for run in ev.runs:
        for stage, v in run.latency.items():
            lat.add_row(run.name, stage, f"{v['p50_ms']:.3f}", f"{v['p95_ms']:.3f}", str(v["n"]))
    console.print(lat)
