"""Dataset analysis of a scan (:class:`~indexer.readers.scan.DatasetScan`): annotations, headers.

``analyse`` turns a scan into one JSON-able dict; ``write_analysis`` writes it as
``analysis.json``, a readable ``analysis.md`` and PNG plots. Numbers are computed on the records
the readers kept; the inputs they skipped are listed under ``problems``.

Definitions:
- *defects per image*: annotated defects (shapes) per kept image, no-damage images included;
- *density* terciles: the 1/3 and 2/3 quantiles of defects per image over **damaged** images;
  low <= t1 < medium <= t2 < high;
- *relative area*: defect area / image area, in buckets very_small < 0.5% <= small < 2% <=
  medium < 10% <= large (the size measures are in :mod:`indexer.analysis.sizes`);
- *class imbalance ratio*: instances of the most frequent damage label / instances of the least
  frequent one present (labels with no instance are listed as absent, not divided by);
- *duplicates* (on request, it reads every image's pixels): clusters of near-duplicate photos,
  as :mod:`indexer.readers.duplicate_groups` finds them for ``split --group-by duplicates``.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from indexer.analysis.sizes import density, image_sizes, relative_area, rounded, stats
from indexer.readers.dataset import ReadOptions, read_dataset
from indexer.readers.duplicate_groups import DuplicateCluster, duplicate_clusters, group_duplicates
from indexer.readers.scan import DatasetScan
from models.taxonomy import Taxonomy

if TYPE_CHECKING:
    from typing_extensions import Unpack

NO_DAMAGE = "no_damage"
# Problem reasons are free text; these fragments (written by indexer.readers) name their kind.
_PROBLEM_KINDS = (
    ("annotation problem", "unusable_annotation"),  # every shape of a damaged image is broken
    ("does not parse", "unparsable"),
    ("missing image", "missing_image"),
    ("point(s)", "short_polygon"),
    ("not in the taxonomy", "unknown_label"),
    ("size mismatch", "size_mismatch"),
    ("truncated", "truncated_image"),
    ("unreadable image", "unreadable_image"),
)


def analyse(
    scan: DatasetScan,
    *,
    taxonomy: Taxonomy | None = None,
    duplicates: Sequence[DuplicateCluster] | None = None,
) -> dict[str, Any]:
    """Everything `visrag analyze` reports, as a JSON-able dict (see the module docstring);
    ``duplicates``: the near-duplicate clusters, listed when given."""
    records = scan.records
    per_image = np.array([len(r.defects) for r in records], dtype=float)
    damaged = per_image[per_image > 0]
    order = _label_order(scan, taxonomy)
    report = {
        "dataset": {
            "root": str(scan.root),
            "format": scan.format,
            "images": len(records),
            "images_with_damage": int((per_image > 0).sum()),
            "images_without_damage": int((per_image == 0).sum()),
            "defects": int(per_image.sum()),
            "groups": len({r.group or r.id for r in records}),
            "problems": len(scan.problems),
        },
        "defects_per_image": stats(per_image, histogram=True),
        "labels": _labels(scan, order, taxonomy),
        "zones": _zones(scan, taxonomy),
        "cooccurrence": _cooccurrence(scan, [k for k in order if k != NO_DAMAGE]),
        "density": density(damaged, int((per_image == 0).sum())),
        "image_sizes": image_sizes(scan.records),
        "relative_area": relative_area(scan.records, order),
        "imbalance": _imbalance(scan, order, taxonomy),
        "coverage": scan.coverage.as_dict(),
        "problems": _problems(scan),
    }
    if duplicates is not None:
        report["duplicates"] = {
            "clusters": len(duplicates),
            "records": sum(len(c.records) for c in duplicates),
            "items": [c.as_dict() for c in duplicates],
        }
    return report


def analyse_dataset(
    path: str | Path,
    out_dir: str | Path,
    *,
    taxonomy: Taxonomy,
    duplicates: bool = False,
    **read: Unpack[ReadOptions],
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Read a dataset, analyse it and write the report; returns (report, written paths).

    ``duplicates``: list near-duplicate clusters (reads every image); ``group_by="duplicates"``
    also counts each cluster as one group.
    """
    scan = read_dataset(path, taxonomy=taxonomy, **read)
    clusters = None
    if duplicates or read.get("group_by") == "duplicates":
        clusters = duplicate_clusters(scan.records)
    if clusters is not None and read.get("group_by") == "duplicates":
        scan = dataclasses.replace(scan, records=group_duplicates(scan.records, clusters))
    report = analyse(scan, taxonomy=taxonomy, duplicates=clusters if duplicates else None)
    return report, write_analysis(report, out_dir)


def problem_kind(reason: str) -> str:
    for fragment, kind in _PROBLEM_KINDS:
        if fragment in reason:
            return kind
    return "other"


# -- sections -------------------------------------------------------------------------------------
def _label_order(scan: DatasetScan, taxonomy: Taxonomy | None) -> list[str]:
    seen = {k for r in scan.records for k in r.labels}
    if taxonomy is not None:
        known = list(taxonomy.damage_ids)
        extra = sorted(seen - set(known) - {taxonomy.unknown_id})
        unknown = [taxonomy.unknown_id] if taxonomy.unknown_id in seen else []
        return known + extra + unknown + [NO_DAMAGE]
    counts = Counter(k for r in scan.records for k in r.labels)
    return sorted(seen, key=lambda k: (-counts[k], k)) + [NO_DAMAGE]


def _name(label: str, taxonomy: Taxonomy | None) -> str:
    if taxonomy is None:
        return label
    try:
        return taxonomy.label(label).en
    except KeyError:
        return label


def _labels(scan: DatasetScan, order: list[str], taxonomy: Taxonomy | None) -> dict[str, Any]:
    images: Counter[str] = Counter()
    instances: Counter[str] = Counter()
    for r in scan.records:
        for k, n in r.labels.items():
            images[k] += 1
            instances[k] += n
        if not r.labels:
            images[NO_DAMAGE] += 1
    n_images = max(1, len(scan.records))
    n_instances = max(1, sum(instances.values()))
    return {
        k: {
            "name": _name(k, taxonomy),
            "images": images[k],
            "instances": instances[k],
            "image_share": rounded(images[k] / n_images),
            "instance_share": rounded(instances[k] / n_instances) if k != NO_DAMAGE else 0.0,
        }
        for k in order
    }


def _zones(scan: DatasetScan, taxonomy: Taxonomy | None) -> dict[str, Any]:
    images: Counter[str] = Counter()
    labels: dict[str, Counter[str]] = {}
    for r in scan.records:
        images[r.zone] += 1
        labels.setdefault(r.zone, Counter()).update(r.labels)
    ids = list(taxonomy.zone_ids) if taxonomy is not None else sorted(images)
    ids += sorted(set(images) - set(ids))
    out = {}
    for z in ids:
        if not images[z]:
            continue
        top = sorted(labels[z].items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        out[z] = {
            "name": taxonomy.zone(z).en if taxonomy is not None and z in taxonomy.zone_ids else z,
            "images": images[z],
            "instances": sum(labels[z].values()),
            "top_labels": [{"label": k, "instances": n} for k, n in top],
        }
    return out


def _cooccurrence(scan: DatasetScan, labels: list[str]) -> dict[str, Any]:
    index = {k: i for i, k in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for r in scan.records:
        present = [index[k] for k in r.labels if k in index]
        for i in present:
            for j in present:
                matrix[i, j] += 1
    return {"labels": labels, "matrix": matrix.tolist(), "unit": "images containing both"}


def _imbalance(scan: DatasetScan, order: list[str], taxonomy: Taxonomy | None) -> dict[str, Any]:
    unknown = taxonomy.unknown_id if taxonomy is not None else "unknown"
    damage = [k for k in order if k not in (NO_DAMAGE, unknown)]
    instances = Counter(k for r in scan.records for k, n in r.labels.items() for _ in range(n))
    images = Counter(k for r in scan.records for k in r.labels)
    present = [k for k in damage if instances[k] > 0]
    if not present:
        return {"ratio_instances": None, "ratio_images": None, "absent": damage}
    most = max(present, key=lambda k: (instances[k], k))
    least = min(present, key=lambda k: (instances[k], k))
    most_img = max(images[k] for k in present)
    least_img = min(images[k] for k in present)
    return {
        "ratio_instances": rounded(instances[most] / instances[least]),
        "ratio_images": rounded(most_img / least_img),
        "most_frequent": most,
        "least_frequent": least,
        "absent": [k for k in damage if instances[k] == 0],
    }


def _problems(scan: DatasetScan) -> dict[str, Any]:
    kinds = Counter(problem_kind(p.reason) for p in scan.problems)
    return {
        "count": len(scan.problems),
        "by_kind": dict(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))),
        "items": [p.as_dict() for p in scan.problems],
    }


# -- writing --------------------------------------------------------------------------------------
def write_analysis(report: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``analysis.json``, ``analysis.md`` and the PNG plots; returns {name: path}."""
    from indexer.analysis.rendering import render_markdown, write_plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "analysis.json", "markdown": out / "analysis.md"}
    text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    paths["json"].write_text(text, encoding="utf-8", newline="\n")
    plots = write_plots(report, out)
    paths["markdown"].write_text(render_markdown(report, plots), encoding="utf-8", newline="\n")
    paths.update({f"plot_{p.stem}": p for p in plots})
    return paths
