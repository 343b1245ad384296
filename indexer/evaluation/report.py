"""Write an evaluation as ``metrics.json``, ``summary.md`` and a self-contained ``report.html``
(:mod:`indexer.evaluation.report_html`). Every metric is shown beside the majority-label and
random-retrieval baselines of the same run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from indexer.evaluation.localisation import (
    LOCALISATION_HEADER,
    localisation_cells,
    localisation_title,
)
from indexer.evaluation.report_html import fmt as _fmt
from indexer.evaluation.report_html import render_html
from indexer.evaluation.results import Evaluation, RunResult, summary_rows
from indexer.evaluation.uncertainty import INTERVAL_HEADER, interval_cells, interval_title
from indexer.evaluation.verdict import verdict_lines

ESTIMATE_METRICS = (
    "micro_f1",
    "macro_f1",
    "leading_micro_f1",
    "leading_macro_f1",
    "brier",
    "ece",
)
HEADLINE = ("recall", "hit", "precision", "map", "ndcg", "label_recall_macro")


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
        "verdict": verdict_lines(ev),
        "setting": ev.setting,
        "warnings": ev.warnings,
        "labels": ev.labels,
        "runs": [_run_json(r, ev, queries=True) for r in ev.runs],
        "baselines": {n: _run_json(b, ev, queries=False) for n, b in ev.baselines.items()},
        "label_estimates": ev.estimates,
        "uncertainty": ev.uncertainty,
        "novelty": ev.novelty,
        "localisation": ev.localisation,
    }


def summary_markdown(ev: Evaluation) -> str:
    s = ev.setting
    lines = ["# Retrieval evaluation", ""]
    lines += [f"> **WARNING**: {w}\n" for w in ev.warnings]  # a warning outranks the verdict
    lines += [f"**{v}**" if i == 0 else f"- {v}" for i, v in enumerate(verdict_lines(ev))]
    lines.append("")
    lines += [f"- **{k}**: {v}" for k, v in s.items()]
    names = [r.name for r in ev.runs]
    lines += ["", "## Metrics beside baselines", ""]
    lines.append("| metric | " + " | ".join([*names, "majority", "random"]) + " |")
    lines.append("|---" * (len(names) + 3) + "|")
    for row in summary_rows(ev, _metric_keys(ev)):
        cells = [_fmt(row[n]) for n in names] + [_fmt(row["majority"]), _fmt(row["random"])]
        lines.append(f"| {row['metric']} | " + " | ".join(cells) + " |")
    if ev.uncertainty is not None:
        lines += ["", f"## {interval_title(ev.uncertainty)}", ""]
        lines += ["| " + " | ".join(INTERVAL_HEADER) + " |", "|---" * len(INTERVAL_HEADER) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in interval_cells(ev.uncertainty)]
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
    if ev.estimates is not None:
        e = ev.estimates
        lines += ["", f"## Label estimates ({e['source']})", ""]
        lines += [
            "| estimates | micro F1 (p >= 0.5) | macro F1 (p >= 0.5) | micro F1 (leading) "
            "| macro F1 (leading) | Brier | ECE |",
            "|---|---|---|---|---|---|---|",
        ]
        for name in ("head", "prior"):
            q = e[name]
            cells = [_fmt(q.get(m)) for m in ESTIMATE_METRICS]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        sets = e.get("label_sets") or []
        if sets:
            lines += ["", "## Conformal label sets (all true labels inside, over photos)", ""]
            lines += ["| level | coverage | 95 % over photos | mean size | labels |"]
            lines.append("|---|---|---|---|---|")
            for c in sets:
                lines.append(
                    f"| {c['level']:.0%} | {c['coverage']:.3f} | [{c['low']:.3f}, "
                    f"{c['high']:.3f}] | {c['mean_size']:.2f} | {c['labels']} |"
                )
    if ev.novelty:
        lines += ["", "## Novelty: held-out labels (AUROC, 0.5 = chance)", ""]
        lines += ["| held-out label | items | AUROC (p-value) | AUROC (mean top-5 cosine) |"]
        lines.append("|---|---|---|---|")
        for n in ev.novelty:
            lines.append(
                f"| {n['label']} | {n['held_out']} | {n['auroc']:.3f} | {n['auroc_score']:.3f} |"
            )
    if ev.localisation is not None:
        lines += ["", *localisation_markdown(ev.localisation)]
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


def localisation_markdown(section: dict[str, Any]) -> list[str]:
    """The localisation section of summary.md: pointing game beside its chance level, overlap."""
    lines = [f"## {localisation_title(section)}", ""]
    if section.get("skipped"):
        return [*lines, f"Not measured: {section['skipped']}"]
    lines += ["| " + " | ".join(LOCALISATION_HEADER) + " |", "|---" * 4 + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in localisation_cells(section)]


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
    paths["report"].write_text(render_html(ev, _metric_keys(ev)), "utf-8")
    return paths


def print_summary(ev: Evaluation, *, console: Any = None) -> None:
    """Headline metrics of every run beside both baselines, and latency, as rich tables."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    for w in ev.warnings:
        console.print(f"[bold red]WARNING[/] {w}")
    for line in verdict_lines(ev):
        console.print(line, markup=False, highlight=False)
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
    if ev.uncertainty is not None:
        first = f"@{ev.ks[0]}"
        diff = Table(title=interval_title(ev.uncertainty))
        for col in ("comparison", "metric", "difference", "interval", "ahead in"):
            diff.add_column(col, justify="left" if col in ("comparison", "metric") else "right")
        for name, versus, metric, *rest in interval_cells(ev.uncertainty):
            if metric.endswith(first):
                diff.add_row(f"{name} - {versus}", metric.replace("label_recall_", ""), *rest)
        console.print(diff)
    lat = Table(title="latency per stage (ms)")
    for col in ("run", "stage", "p50", "p95", "n"):
        lat.add_column(col, justify="left" if col in ("run", "stage") else "right")
    for run in ev.runs:
        for stage, v in run.latency.items():
            lat.add_row(run.name, stage, f"{v['p50_ms']:.3f}", f"{v['p95_ms']:.3f}", str(v["n"]))
    console.print(lat)
