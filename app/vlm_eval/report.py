"""The report of ``visrag evaluate-vlm``: a verdict first, then the arms and the intervals
(console, ``summary.md``, ``report.html``, ``metrics.json``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2


def _row(metrics: Mapping[str, Any], arm: str, versus: str) -> Mapping[str, Any] | None:
    for c in metrics["intervals"]["comparisons"]:
        if c["arm"] == arm and c["versus"] == versus and c["metric"] == "macro_f1":
            return c
    return None


def _said(c: Mapping[str, Any], versus: str) -> str:
    return f"{c['difference']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}] over {versus}"


def verdict(metrics: Mapping[str, Any]) -> str:
    """One sentence: does a context arm beat ``none`` (and ``shuffled``) on macro F1?"""
    best = None
    for arm in ("context", "context+images"):
        row = _row(metrics, arm, "none")
        if row is not None and (best is None or row["low"] > best[1]["low"]):
            best = (arm, row)
    if best is None:
        return "no context arm ran: nothing to compare with none"
    arm, vs_none = best
    vs_shuffled = _row(metrics, arm, "shuffled")
    said = _said(vs_none, "none") + (f", {_said(vs_shuffled, 'shuffled')}" if vs_shuffled else "")
    if vs_none["low"] > 0 and (vs_shuffled is None or vs_shuffled["low"] > 0):
        return f"{arm} helps: macro F1 {said}"
    if vs_none["low"] > 0:
        return (
            f"{arm} helps over none but not over shuffled contexts (any worked examples help as "
            f"much as the retrieved ones): macro F1 {said}"
        )
    if vs_none["high"] < 0:
        return f"{arm} hurts: macro F1 {said}"
    return f"no detectable effect of the context: macro F1 {said} (intervals cover 0)"


def summary_lines(metrics: Mapping[str, Any]) -> list[str]:
    s = metrics["setting"]
    lines = [
        f"# VLM with and without visrag's context: {s['model']}",
        "",
        f"**Verdict: {verdict(metrics)}**",
        "",
        f"{s['queries']} queries ({s['protocol']}), retrieval {s['retrieval']}, k={s['k']}, "
        f"endpoint {s['endpoint']}",
        "",
        "| arm | macro F1 | micro F1 | exact set | unparseable | failed | tokens | p50 s | p95 s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, a in metrics["arms"].items():
        lines.append(
            f"| {arm} | {a['macro_f1']:.3f} | {a['micro_f1']:.3f} | {a['exact_accuracy']:.3f} "
            f"| {a['unparseable']} | {a['failed']} | {a['tokens'].get('total_tokens', 0)} "
            f"| {a['latency_s']['p50']:.2f} | {a['latency_s']['p95']:.2f} |"
        )
    iv = metrics["intervals"]
    lines += [
        "",
        f"Differences with {iv['level']:.0%} intervals (paired bootstrap over {iv['groups']} "
        f"query groups, {iv['repeats']} resamples, seed {iv['seed']}):",
        "",
        "| arm | versus | metric | difference | interval | ahead in |",
        "|---|---|---|---|---|---|",
    ]
    for c in iv["comparisons"]:
        lines.append(
            f"| {c['arm']} | {c['versus']} | {c['metric']} | {c['difference']:+.3f} "
            f"| [{c['low']:+.3f}, {c['high']:+.3f}] | {c['share_ahead']:.0%} |"
        )
    return lines


def render_html(metrics: Mapping[str, Any]) -> str:
    """The self-contained report page (autoescaped: model names and labels come from outside)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("app.vlm_eval", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    labels = sorted({lb for a in metrics["arms"].values() for lb in a["per_label_f1"]})
    return env.get_template("report.html.j2").render(
        verdict=verdict(metrics), labels=labels, **metrics
    )


def write_report(metrics: Mapping[str, Any], out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "metrics": out / "metrics.json",
        "summary": out / "summary.md",
        "html": out / "report.html",
    }
    body = {"verdict": verdict(metrics), **metrics}
    paths["metrics"].write_text(json.dumps(body, indent=2) + "\n", "utf-8")
    paths["summary"].write_text("\n".join(summary_lines(metrics)) + "\n", "utf-8")
    paths["html"].write_text(render_html(metrics), "utf-8")
    return paths
