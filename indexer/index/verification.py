"""``visrag index verify``: every check of an artifact directory, as a report that never raises."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from indexer.errors import ArtifactError
from indexer.index.artifacts import load_artifacts
from indexer.index.catalogue import dataset_summary


def verify_artifacts(path: str | Path) -> list[tuple[str, bool, str]]:
    """Every check ``visrag index verify`` reports: (check, ok, detail); never raises."""
    report: list[tuple[str, bool, str]] = []
    try:
        a = load_artifacts(path, verify=True)
    except ArtifactError as exc:
        return [("load (files, checksums, counts, dims)", False, str(exc))]
    m = a.manifest
    report.append(("files present, sha256 match", True, ", ".join(sorted(m.files))))
    sealed = m.manifest_sha256 is not None
    report.append(
        (
            "manifest checksum",
            True,
            "matches" if sealed else f"not recorded (format {m.format_version})",
        )
    )
    report.append(
        (
            "counts and dims",
            True,
            f"{len(a)} items, image {a.image_vectors.shape[1]}-d, text {a.text_vectors.shape[1]}-d",
        )
    )
    rows = np.arange(len(a), dtype=np.int64)
    for name, store in (("image", a.image_store), ("fused", a.fused_store)):
        ok = np.array_equal(np.sort(store.ids()), rows)
        report.append((f"{name} index ids = catalogue rows", ok, f"{store.index_type}"))
    if a.regions is not None and a.region_store is not None and m.regions is not None:
        held = np.sort(a.region_store.ids())
        ok = np.array_equal(held, np.arange(len(a.regions), dtype=np.int64))
        where = f"{m.store.kind} {m.regions.file}"
        detail = f"{where}, {len(a.regions)} {m.regions.kind} regions, dim {m.regions.dim}"
        if not ok:
            unknown = int(np.sum(held < 0))
            detail += f"; holds {len(held)} ({unknown} not in the region table)"
        report.append(("region index ids = region rows", ok, detail))
    summary = dataset_summary(a.items)
    ds = m.dataset
    same = all(ds.get(k) == summary[k] for k in ("count", "labels", "zones"))
    report.append(("manifest dataset summary = catalogue", same, f"{summary['labels']}"))
    norms = np.linalg.norm(np.asarray(a.image_vectors[:1000]), axis=1)
    ok = bool(len(norms) == 0 or np.allclose(norms, 1.0, atol=1e-3))
    report.append(("image vectors are unit length (first 1000)", ok, ""))
    ids_unique = len({it.id for it in a.items}) == len(a)
    report.append(("item ids unique", ids_unique, ""))
    return report
