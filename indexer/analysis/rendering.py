"""The analysis report as Markdown and PNG plots (matplotlib's Agg canvas, no pyplot state)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from indexer.errors import MissingExtraError


def write_plots(report: dict[str, Any], out: Path) -> list[Path]:
    """Draw the report's distributions; returns the PNG paths written."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # an optional extra: the service image leaves it out
        raise MissingExtraError(
            "matplotlib", extra="reports", purpose="the report's plots"
        ) from exc

    paths = []

    def save(fig: Figure, name: str) -> None:
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path, dpi=100, metadata={"Software": None})
        paths.append(path)

    hist = report["defects_per_image"]["histogram"]
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    ax.bar([int(k) for k in hist], list(hist.values()), color="#4c72b0")
    for t in report["density"].get("thresholds", []):
        ax.axvline(t + 0.5, color="#c44e52", linestyle="--", linewidth=1)
    ax.set(
        xlabel="defects per image", ylabel="images", title="Defects per image (dashed: terciles)"
    )
    save(fig, "defects_per_image")

    labels = report["labels"]
    names = list(labels)
    fig = Figure(figsize=(8, 0.45 * len(names) + 1.5))
    ax = fig.add_subplot()
    ys = range(len(names))
    ax.barh([y - 0.2 for y in ys], [labels[k]["images"] for k in names], 0.4, label="images")
    ax.barh([y + 0.2 for y in ys], [labels[k]["instances"] for k in names], 0.4, label="instances")
    ax.set_yticks(list(ys), names)
    ax.invert_yaxis()
    ax.legend()
    ax.set(title="Canonical labels", xlabel="count")
    save(fig, "labels")

    zones = report["zones"]
    if zones:
        fig = Figure(figsize=(8, 0.4 * len(zones) + 1.5))
        ax = fig.add_subplot()
        ax.barh(list(zones), [z["images"] for z in zones.values()], color="#55a868")
        ax.invert_yaxis()
        ax.set(title="Images per zone", xlabel="images")
        save(fig, "zones")

    co = report["cooccurrence"]
    if co["labels"]:
        n = len(co["labels"])
        fig = Figure(figsize=(1.0 + 0.6 * n, 0.6 * n + 1.0))
        ax = fig.add_subplot()
        image = ax.imshow(co["matrix"], cmap="Blues")
        ax.set_xticks(range(n), co["labels"], rotation=60, ha="right")
        ax.set_yticks(range(n), co["labels"])
        for i, row in enumerate(co["matrix"]):
            for j, v in enumerate(row):
                ax.text(j, i, str(v), ha="center", va="center", fontsize=7)
        fig.colorbar(image, ax=ax, label="images with both labels")
        ax.set_title("Label co-occurrence")
        save(fig, "cooccurrence")

    area = report["relative_area"]["buckets"]
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    ax.bar(list(area), list(area.values()), color="#8172b2")
    ax.set(title="Defect area relative to image", ylabel="defects")
    save(fig, "relative_area")
    return paths


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def render_markdown(report: dict[str, Any], plots: list[Path], *, max_problems: int = 50) -> str:
    ds = report["dataset"]
    dpi = report["defects_per_image"]
    out = [
        "# Dataset analysis",
        "",
        f"`{ds['root']}` ({ds['format']}): **{ds['images']} images** "
        f"({ds['images_with_damage']} with damage, {ds['images_without_damage']} without), "
        f"**{ds['defects']} defects**, {ds['groups']} groups, "
        f"{ds['problems']} input problem(s).",
        "",
        "## Defects per image",
        "",
        f"mean {dpi['mean']:.2f}, median {dpi['median']:g}, std {dpi['std']:.2f}, "
        f"min {dpi['min']:g}, max {dpi['max']:g}.",
        "",
    ]
    dens = report["density"]
    if dens["thresholds"]:
        t1, t2 = dens["thresholds"]
        b = dens["buckets"]
        out += [
            f"Density terciles over damaged images: thresholds t1 = {t1:g}, t2 = {t2:g} "
            f"defects; low (n <= {t1:g}) {b['low']}, medium ({t1:g} < n <= {t2:g}) "
            f"{b['medium']}, high (n > {t2:g}) {b['high']} images.",
            "",
        ]
    labels = report["labels"]
    out += ["## Labels", ""]
    out.append(
        _table(
            ["label", "name", "images", "% images", "instances", "% instances"],
            [
                [
                    k,
                    v["name"],
                    v["images"],
                    _pct(v["image_share"]),
                    v["instances"],
                    _pct(v["instance_share"]),
                ]
                for k, v in labels.items()
            ],
        )
    )
    imb = report["imbalance"]
    if imb.get("ratio_instances") is not None:
        out += [
            "",
            f"Class imbalance: {imb['most_frequent']} / {imb['least_frequent']} = "
            f"{imb['ratio_instances']:.1f}x by instances, {imb['ratio_images']:.1f}x by images.",
        ]
    if imb.get("absent"):
        out += ["", f"Labels with no instance: {', '.join(imb['absent'])}."]
    out += ["", "## Zones", ""]
    out.append(
        _table(
            ["zone", "images", "instances", "top labels"],
            [
                [
                    k,
                    v["images"],
                    v["instances"],
                    ", ".join(f"{t['label']} ({t['instances']})" for t in v["top_labels"]),
                ]
                for k, v in report["zones"].items()
            ],
        )
    )
    co = report["cooccurrence"]
    if co["labels"]:
        out += ["", "## Label co-occurrence (images containing both)", ""]
        out.append(
            _table(
                ["", *co["labels"]],
                [[k, *row] for k, row in zip(co["labels"], co["matrix"], strict=True)],
            )
        )
    area = report["relative_area"]
    out += ["", "## Defect area relative to image", ""]
    out.append(
        _table(
            ["bucket", "range", "defects"],
            [[k, area["thresholds"][k], n] for k, n in area["buckets"].items()],
        )
    )
    sizes = report["image_sizes"]
    out += ["", "## Image sizes", "", f"{sizes['distinct']} distinct size(s).", ""]
    out.append(
        _table(
            ["width", "height", "images"],
            [[s["width"], s["height"], s["images"]] for s in sizes["most_common"]],
        )
    )
    cov = report["coverage"]
    out += [
        "",
        "## Label coverage",
        "",
        f"{cov['mapped']} of {cov['total']} raw labels mapped ({_pct(cov['coverage'])}).",
    ]
    if cov["unmapped_labels"]:
        out += [
            "Unmapped (kept as unknown): "
            + ", ".join(f"`{k}` ({n})" for k, n in cov["unmapped_labels"].items())
            + "."
        ]
    probs = report["problems"]
    out += ["", "## Input problems", "", f"{probs['count']} input(s) reported."]
    if probs["count"]:
        out += [
            "",
            _table(["kind", "count"], [[k, n] for k, n in probs["by_kind"].items()]),
            "",
        ]
        shown = probs["items"][:max_problems]
        out.append(_table(["file", "reason"], [[p["file"], p["reason"]] for p in shown]))
        if probs["count"] > max_problems:
            out += ["", f"... and {probs['count'] - max_problems} more (see analysis.json)."]
    if "duplicates" in report:
        dup = report["duplicates"]
        out += ["", "## Near-duplicate photos", ""]
        out.append(f"{dup['clusters']} cluster(s) of {dup['records']} image(s).")
        if dup["clusters"]:
            rows = [
                [c["group"], "<br>".join(c["files"]), "; ".join(x["reason"] for x in c["links"])]
                for c in dup["items"]
            ]
            out += ["", _table(["cluster", "files", "reason"], rows)]
    if plots:
        out += ["", "## Plots", ""]
        out += [f"![{p.stem}]({p.name})" for p in plots]
    return "\n".join(out) + "\n"


def print_summary(report: dict[str, Any], *, console: Any = None) -> None:
    """A short terminal summary: sizes, labels, coverage and input problems."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    ds = report["dataset"]
    console.print(
        f"[bold]{ds['images']}[/] images ({ds['images_with_damage']} damaged, "
        f"{ds['images_without_damage']} without damage), [bold]{ds['defects']}[/] defects, "
        f"{ds['groups']} groups; defects per image mean "
        f"{report['defects_per_image']['mean']:.2f}"
    )
    table = Table(title="canonical labels")
    for col in ("label", "images", "instances"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for label, entry in report["labels"].items():
        if entry["images"]:
            table.add_row(label, str(entry["images"]), str(entry["instances"]))
    console.print(table)
    cov = report["coverage"]
    if cov["unmapped"]:
        unmapped = ", ".join(f"{k} ({n})" for k, n in list(cov["unmapped_labels"].items())[:10])
        console.print(f"[yellow]unmapped labels kept as unknown:[/] {unmapped}")
    probs = report["problems"]
    if probs["count"]:
        kinds = ", ".join(f"{k} {n}" for k, n in probs["by_kind"].items())
        console.print(f"[bold red]{probs['count']} input problem(s)[/] skipped: {kinds}")
    if report.get("duplicates", {}).get("clusters"):
        dup = report["duplicates"]
        console.print(
            f"[yellow]{dup['clusters']} near-duplicate cluster(s)[/] of {dup['records']} images"
        )
