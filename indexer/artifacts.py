"""The on-disk index artifacts (DESIGN §2.4): the writer and the reader of the format.

One directory::

    manifest.json       format version, models, preprocessing, fusion, taxonomy, indexes,
                        counts, dataset summary, failed inputs, sha256 of every other file
    image_vectors.npy   (n, di) float32 unit image vectors, row i = catalogue row i
    text_vectors.npy    (n, dt) float32 unit description vectors, row i = catalogue row i
    image.faiss         index over the image vectors      (FAISS id = catalogue row)
    fused.faiss         index over fuse(image, text, alpha) (FAISS id = catalogue row)
    catalogue.sqlite    table ``items``: row, id, image, labels, zone, area, description, grp,
                        defects (JSON text in columns; never pickle)

Rows are dense, ``0..n-1``: ``items[r].row == r`` is the FAISS id and the vector row. ``add``
appends rows; ``remove`` drops rows and renumbers the rest (ids, the strings, are what stays
stable). The directory is written into a temporary sibling, fsynced, and swapped in atomically
(``renameat2(RENAME_EXCHANGE)`` on Linux; elsewhere rename-old-away then rename-new-in, with the
reader falling back to the renamed-away copy), so a writer killed at any moment leaves a loadable
directory. One writer at a time per directory (a lock file enforces it).

The catalogue (items, its SQLite table, filters) lives in :mod:`indexer.catalogue`, the model
check in :mod:`indexer.compatibility`, the errors in :mod:`indexer.errors`; their public names
are importable from here as before.

Errors: ``ArtifactError`` (missing/unreadable/inconsistent) > ``ChecksumError`` (a file's sha256
differs) and ``ManifestMismatchError`` (the manifest disagrees with the configured models; its
``field`` names which).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from indexer.catalogue import CatalogueItem, CatalogueMasks, dataset_summary
from indexer.catalogue import read_catalogue as _read_catalogue
from indexer.catalogue import write_catalogue as _write_catalogue  # tests replace it mid-write
from indexer.compatibility import check_compatible as check_compatible  # re-exported
from indexer.errors import ArtifactError, ChecksumError
from indexer.errors import ManifestMismatchError as ManifestMismatchError  # re-exported
from indexer.hits import Filters
from indexer.store import VectorStore
from models.fusion import fuse

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
IMAGE_VECTORS = "image_vectors.npy"
TEXT_VECTORS = "text_vectors.npy"
IMAGE_INDEX = "image.faiss"
FUSED_INDEX = "fused.faiss"
CATALOGUE = "catalogue.sqlite"
DATA_FILES = (IMAGE_VECTORS, TEXT_VECTORS, IMAGE_INDEX, FUSED_INDEX, CATALOGUE)


# -- the loaded artifacts -------------------------------------------------------------------------
@dataclass
class Artifacts:
    path: Path
    manifest: dict[str, Any]
    image_vectors: npt.NDArray[np.float32]
    text_vectors: npt.NDArray[np.float32]
    items: list[CatalogueItem]
    image_store: VectorStore
    fused_store: VectorStore
    image_root: Path | None = None
    _rows: dict[str, int] = field(default_factory=dict, repr=False)
    _masks: CatalogueMasks | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._rows = {it.id: it.row for it in self.items}

    def __len__(self) -> int:
        return len(self.items)

    @property
    def alpha(self) -> float:
        return float(self.manifest["fusion"]["alpha"])

    def row_of(self, item_id: str) -> int | None:
        return self._rows.get(item_id)

    def image_file(self, item: CatalogueItem) -> Path | None:
        """The item's image on disk: absolute as recorded, else under ``image_root``."""
        if not item.image:
            return None
        path = Path(item.image)
        if path.is_absolute():
            return path
        root = self.image_root or self.manifest.get("dataset", {}).get("root")
        return Path(root) / path if root else None

    def select(self, filters: Filters | None) -> npt.NDArray[np.int64] | None:
        """Rows an item filter allows (``None``: no filter). An item without labels is no-damage."""
        if not filters:
            return None
        if self._masks is None:
            no_damage = self.manifest.get("taxonomy", {}).get("no_damage_id", "no_damage")
            self._masks = CatalogueMasks(self.items, no_damage_id=no_damage)
        return self._masks.select(filters)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _recover(path: Path) -> Path:
    """A fallback swap killed between its two renames leaves only ``.<name>.old-*``: use it."""
    if path.exists():
        return path
    old = sorted(path.parent.glob(f".{path.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if old:
        logger.warning(
            "%s is missing; loading the copy an interrupted write left: %s", path, old[-1]
        )
        return old[-1]
    raise ArtifactError(f"artifact directory {path} does not exist")


def read_manifest(path: str | Path) -> dict[str, Any]:
    directory = _recover(Path(path))
    file = directory / MANIFEST
    if not file.is_file():
        raise ArtifactError(f"missing file {MANIFEST} in {directory}")
    try:
        manifest = json.loads(file.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{MANIFEST} in {directory} does not parse: {exc}") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{MANIFEST}: format_version {manifest.get('format_version')!r}, this reader "
            f"reads {FORMAT_VERSION}"
        )
    return manifest


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
    directory = _recover(Path(path))
    manifest = read_manifest(directory)
    files = manifest.get("files", {})
    for name in DATA_FILES:
        if name not in files:
            raise ArtifactError(f"{MANIFEST} lists no checksum for {name}")
    for name, digest in files.items():
        file = directory / name
        if not file.is_file():
            raise ArtifactError(f"missing file {name} in {directory}")
        if verify and _sha256(file) != digest:
            raise ChecksumError(f"checksum mismatch for {name} in {directory}: file was modified")
    try:
        mode = "r" if mmap else None
        image_vectors = np.load(directory / IMAGE_VECTORS, mmap_mode=mode, allow_pickle=False)
        text_vectors = np.load(directory / TEXT_VECTORS, mmap_mode=mode, allow_pickle=False)
        indexes = manifest["index"]
        stores = {
            key: VectorStore.load(
                directory / spec["file"], index_type=spec["type"], params=spec["params"], mmap=mmap
            )
            for key, spec in indexes.items()
        }
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ArtifactError(f"cannot read artifacts in {directory}: {exc}") from exc
    items = _read_catalogue(directory / CATALOGUE)
    # ``path`` stays the requested directory even when an interrupted write's copy was loaded,
    # so that add/remove write back to where the caller expects
    artifacts = Artifacts(
        Path(path), manifest, image_vectors, text_vectors, items, stores["image"],
        stores["fused"], image_root=image_root,
    )  # fmt: skip
    problems = consistency_problems(artifacts)
    if problems:
        raise ArtifactError(f"inconsistent artifacts in {directory}: " + "; ".join(problems))
    return artifacts


def consistency_problems(a: Artifacts) -> list[str]:
    """Counts and dims: manifest vs catalogue vs vectors vs indexes (empty list when consistent)."""
    m = a.manifest
    n = m.get("vector_count")
    di, dt = m["image_model"].get("dim"), m["text_model"].get("dim")
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
    for name, store, dim in ((IMAGE_INDEX, a.image_store, di), (FUSED_INDEX, a.fused_store, None)):
        dim = dim if dim is not None else (di or 0) + (dt or 0)
        if store.ntotal != n or store.dim != dim:
            out.append(f"{name} holds {store.ntotal} x {store.dim}, expected {n} x {dim}")
    return out


def verify_artifacts(path: str | Path) -> list[tuple[str, bool, str]]:
    """Every check ``visrag index verify`` reports: (check, ok, detail); never raises."""
    report: list[tuple[str, bool, str]] = []
    try:
        a = load_artifacts(path, verify=True)
    except ArtifactError as exc:
        return [("load (files, checksums, counts, dims)", False, str(exc))]
    m = a.manifest
    report.append(("files present, sha256 match", True, ", ".join(sorted(m["files"]))))
    report.append(("counts and dims", True, f"{len(a)} items, image {a.image_vectors.shape[1]}-d, "
                   f"text {a.text_vectors.shape[1]}-d"))  # fmt: skip
    rows = np.arange(len(a), dtype=np.int64)
    for name, store in (("image", a.image_store), ("fused", a.fused_store)):
        ok = np.array_equal(np.sort(store.ids()), rows)
        report.append((f"{name} index ids = catalogue rows", ok, f"{store.index_type}"))
    summary = dataset_summary(a.items)
    ds = m.get("dataset", {})
    same = all(ds.get(k) == summary[k] for k in ("count", "labels", "zones"))
    report.append(("manifest dataset summary = catalogue", same, f"{summary['labels']}"))
    norms = np.linalg.norm(np.asarray(a.image_vectors[:1000]), axis=1)
    ok = bool(len(norms) == 0 or np.allclose(norms, 1.0, atol=1e-3))
    report.append(("image vectors are unit length (first 1000)", ok, ""))
    ids_unique = len({it.id for it in a.items}) == len(a)
    report.append(("item ids unique", ids_unique, ""))
    return report


# -- writing --------------------------------------------------------------------------------------
def build_stores(
    image_vectors: npt.NDArray[np.float32],
    text_vectors: npt.NDArray[np.float32],
    *,
    alpha: float,
    index_type: str = "flat",
    params: dict[str, Any] | None = None,
) -> tuple[VectorStore, VectorStore]:
    """The image store and the fused store (``fuse(img, txt, alpha)``), FAISS id = row."""
    rows = np.arange(len(image_vectors), dtype=np.int64)
    image = VectorStore.build(image_vectors, rows, index_type=index_type, params=params)
    fused = VectorStore.build(
        fuse(image_vectors, text_vectors, alpha=alpha), rows, index_type=index_type, params=params
    )
    return image, fused


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def _swap_in(tmp: Path, out: Path) -> None:
    if not out.exists():
        os.rename(tmp, out)
    elif _exchange(tmp, out):
        shutil.rmtree(tmp)  # now holds the previous artifacts
    else:
        old = out.parent / f".{out.name}.old-{tmp.name.rsplit('-', 1)[-1]}"
        os.rename(out, old)
        os.rename(tmp, out)
        _fsync(out.parent)
        shutil.rmtree(old)
    _fsync(out.parent)
    for stale in out.parent.glob(f".{out.name}.old-*"):  # left by a write killed mid-swap
        shutil.rmtree(stale, ignore_errors=True)


@contextlib.contextmanager
def _writer_lock(out: Path) -> Iterator[None]:
    lock = out.parent / f".{out.name}.lock"
    with lock.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ArtifactError(f"another process is writing {out}") from exc
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write_artifacts(
    out: str | Path,
    *,
    manifest: Mapping[str, Any],
    items: Sequence[CatalogueItem],
    image_vectors: npt.NDArray[np.float32],
    text_vectors: npt.NDArray[np.float32],
    image_store: VectorStore,
    fused_store: VectorStore,
) -> dict[str, Any]:
    """Write an artifact directory atomically; returns the manifest written.

    ``manifest`` carries the descriptive fields (models, fusion, taxonomy, dataset, failed...);
    format version, created-at, counts, index specs and checksums are filled in here.
    """
    out = Path(out)
    n = len(items)
    if [it.row for it in items] != list(range(n)):
        raise ValueError("catalogue rows must be 0..n-1 in order")
    if image_vectors.shape[0] != n or text_vectors.shape[0] != n:
        raise ValueError(f"{n} items but {image_vectors.shape[0]}/{text_vectors.shape[0]} vectors")
    out.parent.mkdir(parents=True, exist_ok=True)
    with _writer_lock(out):
        for stale in out.parent.glob(f".{out.name}.tmp-*"):
            logger.info("removing %s left by an interrupted write", stale)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        try:
            np.save(tmp / IMAGE_VECTORS, np.ascontiguousarray(image_vectors, np.float32))
            np.save(tmp / TEXT_VECTORS, np.ascontiguousarray(text_vectors, np.float32))
            image_store.save(tmp / IMAGE_INDEX)
            fused_store.save(tmp / FUSED_INDEX)
            _write_catalogue(tmp / CATALOGUE, items)
            full = {
                "format_version": FORMAT_VERSION,
                **{k: v for k, v in manifest.items() if k not in ("files", "index")},
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "vector_count": n,
                "index": {
                    key: {"file": name, "type": store.index_type, "params": store.params,
                          "metric": "inner_product", "dim": store.dim}
                    for key, name, store in (("image", IMAGE_INDEX, image_store),
                                             ("fused", FUSED_INDEX, fused_store))
                },
                "files": {name: _sha256(tmp / name) for name in DATA_FILES},
            }  # fmt: skip
            (tmp / MANIFEST).write_text(json.dumps(full, indent=2, ensure_ascii=False), "utf-8")
            for name in (*DATA_FILES, MANIFEST):
                _fsync(tmp / name)
            _fsync(tmp)
            _swap_in(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    logger.info("wrote %d items to %s", n, out)
    return full


def rewrite_artifacts(
    artifacts: Artifacts,
    *,
    keep: npt.NDArray[np.bool_] | None = None,
    new_items: Sequence[CatalogueItem] = (),
    new_image_vectors: npt.NDArray[np.float32] | None = None,
    new_text_vectors: npt.NDArray[np.float32] | None = None,
    history: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Drop rows (``keep`` False) and/or append items, updating the FAISS indexes in place
    (remove + renumber, add) rather than rebuilding them, then write atomically back."""
    a = artifacts
    n = len(a.items)
    keep = np.ones(n, bool) if keep is None else keep
    kept_rows = np.flatnonzero(keep).astype(np.int64)
    removed = np.flatnonzero(~keep).astype(np.int64)
    m = len(new_items)
    di, dt = a.image_vectors.shape[1], a.text_vectors.shape[1]
    add_img = np.zeros((0, di), np.float32) if new_image_vectors is None else new_image_vectors
    add_txt = np.zeros((0, dt), np.float32) if new_text_vectors is None else new_text_vectors
    if len(add_img) != m or len(add_txt) != m:
        raise ValueError(f"{m} new items but {len(add_img)}/{len(add_txt)} new vectors")
    for store in (a.image_store, a.fused_store):
        if len(removed):
            store.remove(removed)
            store.renumber(kept_rows, np.arange(len(kept_rows), dtype=np.int64))
    new_rows = np.arange(len(kept_rows), len(kept_rows) + m, dtype=np.int64)
    if m:
        a.image_store.add(add_img, new_rows)
        a.fused_store.add(fuse(add_img, add_txt, alpha=a.alpha), new_rows)
    items = [
        CatalogueItem(**{**it.__dict__, "row": r})
        for r, it in enumerate([a.items[i] for i in kept_rows] + list(new_items))
    ]
    image_vectors = np.concatenate([np.asarray(a.image_vectors)[kept_rows], add_img])
    text_vectors = np.concatenate([np.asarray(a.text_vectors)[kept_rows], add_txt])
    manifest = dict(a.manifest)
    manifest["dataset"] = dataset_summary(
        items, **{k: v for k, v in manifest.get("dataset", {}).items()
                  if k not in ("count", "labels", "label_instances", "zones")}
    )  # fmt: skip
    if history:
        manifest["history"] = [*manifest.get("history", []), dict(history)]
    return write_artifacts(
        a.path,
        manifest=manifest,
        items=items,
        image_vectors=image_vectors,
        text_vectors=text_vectors,
        image_store=a.image_store,
        fused_store=a.fused_store,
    )
