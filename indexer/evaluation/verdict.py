"""The first lines of every evaluation report: which mode to use for this index, and why.

Read from the paired group-bootstrap intervals (:mod:`indexer.evaluation.uncertainty`), at the
first k and at k=5 (or the k nearest to it), micro (``recall``) AND macro
(``label_recall_macro``) label recall:

- a mode **loses** to ``image`` when any of those four intervals lies entirely below 0 — a mode
  that lifts micro recall by answering the frequent label more often loses on macro;
- among the modes that do not lose, the one with the largest micro + macro recall at the first k
  is recommended (``image`` when no other mode is ahead);
- the last line says whether image search itself beats answering the majority label on micro
  recall: when it does not, neighbours carry less label information than the prior.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from indexer.evaluation.results import Evaluation

METRICS = (("recall", "micro"), ("label_recall_macro", "macro"))


def verdict_lines(ev: Evaluation) -> list[str]:
    """Plain-text lines (Markdown-safe) leading summary.md, report.html and the console."""
    unc = ev.uncertainty
    names = [r.name for r in ev.runs]
    regions = ev.setting.get("unit") == "region"
    if unc is None or "image" not in names:
        if regions:
            return [
                "Verdict: region-to-region only (these regions have no photo vectors to compare "
                "with): read each metric beside the majority-label and random baselines."
            ]
        return [
            f"Verdict: {names[0]} is the only comparable mode run"
            " (run with --mode image,... and intervals for a recommendation)."
        ]
    ks = tuple(dict.fromkeys((ev.ks[0], min(ev.ks, key=lambda k: (abs(k - 5), k)))))
    rows = {(c["run"], c["versus"], c["metric"]): c for c in unc["comparisons"]}
    summary = {r.name: r.summary for r in ev.runs}
    lines, keep = [], ["image"]
    for name in (n for n in names if n != "image"):
        cells = [rows.get((name, "image", f"{m}@{k}")) for k in ks for m, _ in METRICS]
        if any(c is None for c in cells):
            continue
        words = _compare(name, cells, ks)  # type: ignore[arg-type]
        lines.append(words)
        if not any(c["high"] < 0 for c in cells if c is not None):
            keep.append(name)
    k1 = ks[0]
    best = max(
        keep,
        key=lambda n: (
            summary[n][f"recall@{k1}"] + summary[n][f"label_recall_macro@{k1}"],
            n == "image",
        ),
    )
    reason = (
        "no other mode is ahead of image search on micro and macro recall"
        if best == "image"
        else f"it loses to image nowhere at k={'/'.join(map(str, ks))} (micro and macro) and has "
        f"the highest micro + macro recall@{k1}"
    )
    majority = rows.get(("image", "majority", f"recall@{k1}"))
    head = [f"Verdict: use mode '{best}' for this index: {reason}."]
    if regions:  # the runs are what a damage region is queried by, not retrieval modes
        head = [
            "Verdict: to find cases like a damage region, query by the region: "
            + reason.replace("mode", "query").replace("image search", "the photo's whole image")
            + "."
            if best == "region"
            else "Verdict: region queries are not ahead of the whole image of the region's photo "
            "here (micro + macro recall): query by the photo."
        ]
    if majority is not None:
        beats = "yes" if majority["low"] > 0 else "no"
        head_line = (
            f"image beats the majority label on micro recall@{k1}: {beats} ({_interval(majority)})."
        )
        return [*head, *lines, head_line]
    return [*head, *lines]


def _compare(name: str, cells: list[Mapping[str, Any]], ks: tuple[int, ...]) -> str:
    parts = []
    i = 0
    for k in ks:
        for _, word in METRICS:
            parts.append(f"{word}@{k} {_interval(cells[i])}")
            i += 1
    ahead = all(c["low"] > 0 for c in cells)
    behind = [c for c in cells if c["high"] < 0]
    state = (
        "beats image everywhere (intervals above 0)"
        if ahead
        else "loses to image (an interval below 0)"
        if behind
        else "not worse than image (no interval below 0)"
    )
    return f"{name} vs image: {state}; " + ", ".join(parts) + "."


def _interval(c: Mapping[str, Any]) -> str:
    return f"{c['difference']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]"
