"""The on-disk index artifacts (DESIGN §2.4): writer and reader, the only module that knows the
file names and opens, parses or hashes the manifest file. One directory::

    manifest.json       IndexManifest (index.manifest), with the sha256 of every other file
    image_vectors.npy   (n, di) float32 unit image vectors, row i = catalogue row i
    text_vectors.npy    (n, dt) float32 unit description vectors, row i = catalogue row i
    image.faiss         index over the image vectors      (FAISS id = catalogue row)
    fused.faiss         index over fuse(image, text, alpha) (FAISS id = catalogue row)
    catalogue.sqlite    table ``items`` (index.catalogue; JSON text in columns, never pickle)
    regions.sqlite      the region table (index.regions), when the manifest has ``regions``
    region_vectors.npy  (r, dr) float32 unit region vectors, row j = region row j
    region.faiss        index over the region vectors (FAISS id = region row); on Milvus, the
                        collection ``<name>_region`` instead (the manifest's ``regions.file``)
    region_background*.npy  (b, dr) background patch tokens and (b,) their catalogue rows
    label_head.*.npy    the label head's arrays (index.head), when the manifest's ``label_head``
                        section says ``fitted``; refitted on every write

Rows are dense, ``0..n-1``: ``add`` appends rows; ``remove`` drops rows and renumbers the rest
(ids, the strings, stay stable). Writes go through :func:`.atomic.atomic_directory`, so a
writer killed at any moment leaves a loadable directory. Errors (:mod:`indexer.errors`):
``ArtifactError`` (missing, unreadable, inconsistent, invalid manifest) > ``ChecksumError``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from indexer.errors import ArtifactError, ChecksumError
from indexer.index import atomic
from indexer.index.catalogue import CatalogueItem, CatalogueMasks, read_catalogue
from indexer.index.catalogue import (
    write_catalogue as _write_catalogue,  # tests replace it mid-write
)
from indexer.index.catalogue_head import HEAD_ARRAYS, fit_catalogue_head, head_from_arrays
from indexer.index.manifest import (
    FORMAT_VERSION,
    IndexManifest,
    ManifestBody,
    manifest_checksum,
    parse_manifest,
)
from indexer.index.regions import Background, RegionTable, read_regions, write_regions
from indexer.index.stores import (
    VectorStoreProtocol,
    make_region_store,
    open_region_store,
    open_stores,
    store_section,
)
from indexer.labels.head import LabelHead, LabelHeadError
from indexer.query import Filters

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
IMAGE_VECTORS = "image_vectors.npy"
TEXT_VECTORS = "text_vectors.npy"
IMAGE_INDEX = "image.faiss"
FUSED_INDEX = "fused.faiss"
CATALOGUE = "catalogue.sqlite"
DATA_FILES = (IMAGE_VECTORS, TEXT_VECTORS, IMAGE_INDEX, FUSED_INDEX, CATALOGUE)
HEAD_FILES = {name: f"label_head.{name}.npy" for name in HEAD_ARRAYS}
REGIONS = "regions.sqlite"
REGION_VECTORS = "region_vectors.npy"
REGION_INDEX = "region.faiss"
BACKGROUND_VECTORS = "region_background.npy"
BACKGROUND_ITEMS = "region_background_items.npy"
REGION_FILES = (REGIONS, REGION_VECTORS, REGION_INDEX, BACKGROUND_VECTORS, BACKGROUND_ITEMS)
#: How each kind of region vector is made (the manifest's ``regions.pooling``).
REGION_POOLINGS = {
    "patches": "coverage-weighted mean of the final patch tokens over the polygon",
    "crops": "the region's crop encoded by the image model",
    "imported": "precomputed vectors, imported",
}


# -- the loaded artifacts -------------------------------------------------------------------------
@dataclass
class Artifacts:
    path: Path
    manifest: IndexManifest
    image_vectors: npt.NDArray[np.float32]
    text_vectors: npt.NDArray[np.float32]
    items: list[CatalogueItem]
    image_store: VectorStoreProtocol
    fused_store: VectorStoreProtocol
    image_root: Path | None = None
    label_head: LabelHead | None = None  # None: not fitted (see manifest.label_head) or old index
    regions: RegionTable | None = None  # None: an index built without regions
    region_store: VectorStoreProtocol | None = None
    _rows: dict[str, int] = field(default_factory=dict, repr=False)
    _masks: CatalogueMasks | None = field(default=None, repr=False)
    _outside_root: set[str] = field(default_factory=set, repr=False)  # logged once each

    def __post_init__(self) -> None:
        self._rows = {it.id: it.row for it in self.items}

    def __len__(self) -> int:
        return len(self.items)

    @property
    def alpha(self) -> float:
        return self.manifest.fusion.alpha

    def row_of(self, item_id: str) -> int | None:
        return self._rows.get(item_id)

    def image_file(self, item: CatalogueItem) -> Path | None:
        """The item's image on disk: absolute as recorded, else under the recorded dataset root.

        With ``image_root`` set (the service's ``data_root``), every image lies under it: a path
        that resolves outside it (``..``, an absolute path elsewhere, a symlink out) is ``None``,
        neither served nor decoded, and the reason is logged once per item.
        """
        if not item.image:
            return None
        path = Path(item.image)
        if self.image_root is not None:
            root = self.image_root.resolve()
            full = (root / path).resolve()
            if full.is_relative_to(root):
                return full
            if item.id not in self._outside_root:
                self._outside_root.add(item.id)
                logger.warning(
                    "image of %s not served: %s resolves to %s, outside data_root %s",
                    item.id,
                    item.image,
                    full,
                    root,
                )
            return None
        if path.is_absolute():
            return path
        recorded = self.manifest.dataset.get("root")
        return Path(recorded) / path if recorded else None

    def select(self, filters: Filters | None) -> npt.NDArray[np.int64] | None:
        """Rows an item filter allows (``None``: no filter). An item without labels is no-damage."""
        if not filters:
            return None
        if self._masks is None:
            no_damage = self.manifest.taxonomy.no_damage_id
            self._masks = CatalogueMasks(self.items, no_damage_id=no_damage)
        return self._masks.select(filters)


def _data_files(kind: str, regions: bool = False) -> tuple[str, ...]:
    """The files an index directory holds: no ``*.faiss`` when the vectors live in Milvus; the
    region files when the index has regions."""
    faiss_files = (IMAGE_INDEX, FUSED_INDEX, REGION_INDEX)
    files = (*DATA_FILES, *REGION_FILES) if regions else DATA_FILES
    return tuple(n for n in files if kind == "faiss" or n not in faiss_files)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def has_manifest(path: str | Path) -> bool:
    """Whether ``path`` holds a manifest (an artifact directory, complete or not)."""
    return (Path(path) / MANIFEST).is_file()


def manifest_path(path: str | Path) -> Path:
    """The manifest file of an artifact directory (to name it; :func:`read_manifest` reads it)."""
    return Path(path) / MANIFEST


def manifest_fingerprint(path: str | Path) -> str | None:
    """sha256 of the directory's manifest file as it is now (``None``: unreadable).

    It names one *generation* of the directory: every write rewrites the manifest (new file
    checksums, its own ``manifest_sha256``), so a new fingerprint means new content.
    """
    try:
        return hashlib.sha256((Path(path) / MANIFEST).read_bytes()).hexdigest()
    except OSError:
        return None


def is_current(artifacts: Artifacts) -> bool:
    """Whether the directory still holds the generation ``artifacts`` were loaded from (no writer
    has swapped it since).

    Raises:
        ArtifactError: the manifest is missing or does not parse now.
    """
    return read_manifest(artifacts.path) == artifacts.manifest


def read_manifest(path: str | Path) -> IndexManifest:
    """The validated manifest of an artifact directory (the vectors and indexes are not read).

    Raises:
        ArtifactError: no manifest, not JSON, an unreadable format version or an invalid field.
    """
    directory = atomic.recover(Path(path))
    file = directory / MANIFEST
    if not file.is_file():
        raise ArtifactError(f"missing file {MANIFEST} in {directory}")
    try:
        data = json.loads(file.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{MANIFEST} in {directory} does not parse: {exc}") from exc
    return parse_manifest(data, where=f"{MANIFEST} in {directory}")


def load_artifacts(
    path: str | Path, *, verify: bool = True, mmap: bool = False, image_root: Path | None = None
) -> Artifacts:
    """Load (and by default checksum) an artifact directory.

    Args:
        path: the artifact directory.
        verify: check the sha256 of every file the manifest lists (reads every byte once).
        mmap: memory-map vectors and FAISS indexes read-only instead of reading them into RAM.
        image_root: where relative image paths live (default: the dataset root recorded at build).

    Raises:
        ArtifactError: a missing file (named), a bad format version, inconsistent counts or dims.
        ChecksumError: a file whose sha256 differs from the manifest (named).
    """
    directory = atomic.recover(Path(path))
    manifest = read_manifest(directory)
    files = manifest.files
    for name in _data_files(manifest.store.kind, manifest.regions is not None):
        if name not in files:
            raise ArtifactError(f"{MANIFEST} lists no checksum for {name}")
    for name, digest in files.items():
        file = directory / name
        if not file.is_file():
            raise ArtifactError(f"missing file {name} in {directory}")
        if verify and _sha256(file) != digest:
            raise ChecksumError(f"checksum mismatch for {name} in {directory}: file was modified")
    try:
        mode: Literal["r"] | None = "r" if mmap else None
        image_vectors = np.load(directory / IMAGE_VECTORS, mmap_mode=mode, allow_pickle=False)
        text_vectors = np.load(directory / TEXT_VECTORS, mmap_mode=mode, allow_pickle=False)
        items = read_catalogue(directory / CATALOGUE)
        stores = open_stores(directory, manifest, items, mmap=mmap)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        if isinstance(exc, ArtifactError):
            raise
        raise ArtifactError(f"cannot read artifacts in {directory}: {exc}") from exc
    head = _load_head(directory, manifest)
    regions, region_store = _load_regions(directory, manifest, mmap)
    # ``path`` stays the requested directory even when an interrupted write's copy was loaded,
    # so that add/remove write back to where the caller expects
    artifacts = Artifacts(
        Path(path),
        manifest,
        image_vectors,
        text_vectors,
        items,
        stores["image"],
        stores["fused"],
        image_root=image_root,
        label_head=head,
        regions=regions,
        region_store=region_store,
    )
    problems = consistency_problems(artifacts)
    if problems:
        raise ArtifactError(f"inconsistent artifacts in {directory}: " + "; ".join(problems))
    return artifacts


def _load_head(directory: Path, manifest: IndexManifest) -> LabelHead | None:
    section = manifest.label_head
    if section is None or section.status != "fitted":
        return None
    try:
        arrays = {
            name: np.load(directory / file, allow_pickle=False) for name, file in HEAD_FILES.items()
        }
        return head_from_arrays(section, arrays)
    except (OSError, ValueError, LabelHeadError) as exc:
        raise ArtifactError(f"cannot read the label head in {directory}: {exc}") from exc


def _load_regions(
    directory: Path, manifest: IndexManifest, mmap: bool
) -> tuple[RegionTable | None, VectorStoreProtocol | None]:
    section = manifest.regions
    if section is None:
        return None, None
    try:
        mode: Literal["r"] | None = "r" if mmap else None
        vectors = np.load(directory / REGION_VECTORS, mmap_mode=mode, allow_pickle=False)
        background = Background(
            np.load(directory / BACKGROUND_VECTORS, allow_pickle=False),
            np.load(directory / BACKGROUND_ITEMS, allow_pickle=False),
        )
        table = read_regions(
            directory / REGIONS, section.kind, vectors, section.calibration, background
        )
        store = open_region_store(directory, manifest, table, mmap=mmap)
    except (OSError, ValueError, RuntimeError) as exc:
        if isinstance(exc, ArtifactError):
            raise
        raise ArtifactError(f"cannot read the regions in {directory}: {exc}") from exc
    return table, store


def consistency_problems(a: Artifacts) -> list[str]:
    """Counts and dims: manifest vs catalogue vs vectors vs indexes (empty list when consistent)."""
    m = a.manifest
    n = m.vector_count
    di, dt = m.image_model.dim, m.text_model.dim
    out = []
    if len(a.items) != n:
        out.append(f"catalogue has {len(a.items)} items, manifest vector_count {n}")
    if [it.row for it in a.items] != list(range(len(a.items))):
        out.append("catalogue rows are not 0..n-1")
    for name, vecs, dim in (
        (IMAGE_VECTORS, a.image_vectors, di),
        (TEXT_VECTORS, a.text_vectors, dt),
    ):
        if vecs.dtype != np.float32 or vecs.ndim != 2 or vecs.shape != (n, dim):
            out.append(f"{name} is {vecs.dtype} {vecs.shape}, manifest says float32 ({n}, {dim})")
    live = m.store.kind == "milvus"  # shared with writers: its count may differ from ours
    stores: tuple[tuple[Literal["image", "fused"], str, VectorStoreProtocol, int], ...] = (
        ("image", IMAGE_INDEX, a.image_store, di),
        ("fused", FUSED_INDEX, a.fused_store, di + dt),
    )
    for key, name, store, dim in stores:
        spec = m.index[key]
        if store.ntotal != n and not live:
            out.append(f"{name}: count is {store.ntotal} in the file, {n} in the manifest")
        if store.dim != spec.dim:
            out.append(f"{name}: dim is {store.dim} in the file, {spec.dim} in the manifest")
        elif spec.dim != dim:
            out.append(f"manifest index.{key}.dim is {spec.dim}, its models make {dim}")
    out.extend(_region_problems(a))
    return out


def _region_problems(a: Artifacts) -> list[str]:
    section, table, store = a.manifest.regions, a.regions, a.region_store
    if section is None or table is None or store is None:
        return []
    out = []
    r = section.count
    if len(table) != r:
        out.append(f"{REGIONS} has {len(table)} regions, manifest regions.count {r}")
    vecs = table.vectors
    if vecs.dtype != np.float32 or vecs.ndim != 2 or vecs.shape != (r, section.dim):
        out.append(
            f"{REGION_VECTORS} is {vecs.dtype} {vecs.shape}, manifest says float32 "
            f"({r}, {section.dim})"
        )
    live = a.manifest.store.kind == "milvus"  # shared with writers, as the image collections
    if store.ntotal != r and not live:
        out.append(f"{section.file}: count is {store.ntotal} in the file, {r} in the manifest")
    if r and store.dim != section.dim:
        out.append(f"{section.file}: dim is {store.dim}, manifest regions.dim {section.dim}")
    n = len(a.items)
    if any(not 0 <= reg.item < n for reg in table.regions):
        out.append(f"{REGIONS}: a region names an item row outside 0..{n - 1}")
    bank = table.background
    if bank is not None and len(bank):
        if bank.vectors.shape != (section.background, section.dim):
            out.append(
                f"{BACKGROUND_VECTORS} is {bank.vectors.shape}, manifest says "
                f"({section.background}, {section.dim})"
            )
        if bank.items.min() < 0 or bank.items.max() >= n:
            out.append(f"{BACKGROUND_ITEMS}: a patch names an item row outside 0..{n - 1}")
    return out


# -- writing --------------------------------------------------------------------------------------
def write_artifacts(
    out: str | Path,
    *,
    manifest: ManifestBody,
    items: Sequence[CatalogueItem],
    image_vectors: npt.NDArray[np.float32],
    text_vectors: npt.NDArray[np.float32],
    image_store: VectorStoreProtocol,
    fused_store: VectorStoreProtocol,
    regions: RegionTable | None = None,
    region_store: VectorStoreProtocol | None = None,
) -> IndexManifest:
    """Write an artifact directory atomically; returns the manifest written.

    ``regions``: the region table (its items are catalogue rows of ``items``), written with its
    vectors; ``None``: an index without regions. ``region_store``: its store (id = region row),
    already updated (add/remove); ``None``: a new one over the table's vectors, on the image
    store's backend (a flat ``region.faiss``, or the Milvus collection ``<name>_region``).

    ``manifest`` carries the descriptive fields (models, fusion, taxonomy, dataset, failed...);
    format version, created-at, counts, index specs and checksums are filled in here.
    """
    out = Path(out)
    n = len(items)
    if [it.row for it in items] != list(range(n)):
        raise ValueError("catalogue rows must be 0..n-1 in order")
    if image_vectors.shape[0] != n or text_vectors.shape[0] != n:
        raise ValueError(f"{n} items but {image_vectors.shape[0]}/{text_vectors.shape[0]} vectors")
    with atomic.atomic_directory(out) as tmp:
        np.save(tmp / IMAGE_VECTORS, np.ascontiguousarray(image_vectors, np.float32))
        np.save(tmp / TEXT_VECTORS, np.ascontiguousarray(text_vectors, np.float32))
        image_store.save(tmp / IMAGE_INDEX)
        fused_store.save(tmp / FUSED_INDEX)
        _write_catalogue(tmp / CATALOGUE, items)
        store = store_section(image_store)
        names = {
            "image": getattr(image_store, "collection", IMAGE_INDEX),
            "fused": getattr(fused_store, "collection", FUSED_INDEX),
        }
        section, arrays = fit_catalogue_head(
            items,
            image_vectors,
            no_damage=manifest.taxonomy.no_damage_id,
            previous=manifest.label_head,
        )
        for name, array in arrays.items():
            np.save(tmp / HEAD_FILES[name], array, allow_pickle=False)
        region_section = None
        if regions is not None:
            region_section = _write_regions(tmp, regions, items, image_store, region_store)
        data_files = _data_files(store["kind"], regions is not None)
        written = [*data_files, *(HEAD_FILES[name] for name in arrays)]
        full = IndexManifest.model_validate(
            {
                **manifest.model_dump(),
                "label_head": section.model_dump(),
                "format_version": FORMAT_VERSION,
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "vector_count": n,
                "index": {
                    key: {
                        "file": names[key],
                        "type": s.index_type,
                        "params": s.params,
                        "metric": "inner_product",
                        "dim": s.dim,
                    }
                    for key, s in (("image", image_store), ("fused", fused_store))
                },
                "files": {name: _sha256(tmp / name) for name in written},
                "store": store,
                "regions": region_section,
                "manifest_sha256": "pending",  # replaced by the checksum of the rest, below
            }
        )
        data = full.as_json()
        data["manifest_sha256"] = manifest_checksum(data)
        full = IndexManifest.model_validate(data)
        text = json.dumps(data, indent=2, ensure_ascii=False)
        (tmp / MANIFEST).write_text(text, "utf-8")
    logger.info("wrote %d items to %s", n, out)
    return full


def _write_regions(
    directory: Path,
    table: RegionTable,
    items: Sequence[CatalogueItem],
    image_store: VectorStoreProtocol,
    store: VectorStoreProtocol | None,
) -> dict[str, Any]:
    """The region files in ``directory`` and the region store saved (FAISS: ``region.faiss``;
    Milvus: the collection flushed); returns the manifest's ``regions`` section."""
    n_items = len(items)
    if any(not 0 <= r.item < n_items for r in table.regions):
        raise ValueError(f"a region names an item row outside 0..{n_items - 1}")
    vectors = np.ascontiguousarray(table.vectors, np.float32)
    np.save(directory / REGION_VECTORS, vectors)
    background = table.background or Background.empty(table.dim)
    if any(not 0 <= i < n_items for i in background.items):
        raise ValueError(f"a background patch names an item row outside 0..{n_items - 1}")
    np.save(directory / BACKGROUND_VECTORS, np.ascontiguousarray(background.vectors, np.float32))
    np.save(directory / BACKGROUND_ITEMS, np.ascontiguousarray(background.items, np.int64))
    write_regions(directory / REGIONS, table)
    if store is None:
        store = make_region_store(table, [it.id for it in items], like=image_store)
    elif store_section(store)["kind"] == "faiss" and store.ntotal != len(table):
        raise ValueError(f"the region store holds {store.ntotal} vectors, the table {len(table)}")
    store.save(directory / REGION_INDEX)
    return {
        "kind": table.kind,
        "dim": table.dim,
        "count": len(table),
        "pooling": REGION_POOLINGS[table.kind],
        "background": len(background),
        "file": getattr(store, "collection", REGION_INDEX),
        "calibration": table.calibration,
    }
