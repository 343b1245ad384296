"""The vector stores: the seam every store satisfies, and which backend holds an index's vectors.

Two backends satisfy :class:`VectorStoreProtocol` (inner-product search over unit vectors, ids =
catalogue rows): ``faiss`` (default), :class:`indexer.index.faiss_store.VectorStore` files in the
artifact directory; ``milvus``, :class:`indexer.index.milvus_store.MilvusStore`, collections
``<name>_image`` and ``<name>_fused`` on the Milvus the URI names (a ``*.db`` path = Milvus Lite).
A store that keeps the catalogue's scalar fields (Milvus) also satisfies :class:`FilteringStore`:
filters and exclusions are pushed down into its search. :func:`make_stores`, :func:`open_stores`
and :func:`store_section` build, open and describe the image + fused stores;
:func:`make_region_store` and :func:`open_region_store` the region store beside them (ids =
region rows): a flat ``region.faiss``, or the collection ``<name>_region`` on the same Milvus.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from indexer.index.faiss_store import VectorStore, build_stores
from models.fusion import fuse

if TYPE_CHECKING:
    from indexer.index.catalogue import CatalogueItem
    from indexer.index.manifest import IndexManifest
    from indexer.index.regions import RegionTable
    from indexer.query import Filters

STORE_KINDS = ("faiss", "milvus")
#: The region collection's suffix on Milvus (``<name>_region``, beside ``_image`` and ``_fused``).
REGION_SUFFIX = "region"
Ids = npt.NDArray[np.int64]
Vectors = npt.NDArray[np.float32]


@runtime_checkable
class VectorStoreProtocol(Protocol):
    """Inner-product search over unit vectors keyed by catalogue row."""

    index_type: str
    params: dict[str, Any]

    @property
    def ntotal(self) -> int: ...

    @property
    def dim(self) -> int: ...

    def ids(self) -> Ids: ...

    def search(
        self, queries: npt.ArrayLike, k: int, *, allowed: npt.ArrayLike | None = None
    ) -> tuple[Vectors, Ids]: ...

    def add(self, vectors: npt.ArrayLike, ids: npt.ArrayLike, *, items: Sequence[Any] = ()) -> None:
        """``items``: the rows' scalar fields, for a store that keeps them (Milvus): catalogue
        items, or region entries in a region store; FAISS ignores them."""
        ...

    def remove(self, ids: npt.ArrayLike) -> int: ...

    def renumber(self, old_ids: npt.ArrayLike, new_ids: npt.ArrayLike) -> None: ...

    def save(self, path: str | Path) -> None: ...


@runtime_checkable
class FilteringStore(Protocol):
    """A store that evaluates item filters itself (its scalar fields mirror the catalogue)."""

    def search_filtered(
        self,
        query: Vectors,
        k: int,
        *,
        filters: Filters | None,
        excluded: set[int],
    ) -> tuple[Ids, Vectors]:
        """Top-k rows and scores for one query, filtered and without the ``excluded`` rows."""
        ...

    def problem(self) -> str | None:
        """Why the store cannot answer now (unreachable, collection gone), else ``None``."""
        ...


@dataclass(frozen=True)
class StoreTarget:
    """Where ``index build|import`` puts the vectors (``--store``, ``--milvus-uri``, ...)."""

    kind: str = "faiss"
    uri: str | None = None
    collection: str = "visrag"

    def __post_init__(self) -> None:
        if self.kind not in STORE_KINDS:
            raise ValueError(f"unknown store {self.kind!r}; choose one of {STORE_KINDS}")


def make_stores(
    image_vectors: npt.NDArray[np.float32],
    text_vectors: npt.NDArray[np.float32],
    *,
    alpha: float,
    items: Sequence[CatalogueItem],
    index_type: str = "flat",
    params: dict[str, Any] | None = None,
    target: StoreTarget | None = None,
    no_damage_id: str = "no_damage",
) -> tuple[VectorStoreProtocol, VectorStoreProtocol]:
    """The image store and the fused store on the chosen backend (id = catalogue row)."""
    if target is None or target.kind == "faiss":
        return build_stores(
            image_vectors, text_vectors, alpha=alpha, index_type=index_type, params=params
        )
    from indexer.index.milvus_connection import connect, resolve_uri
    from indexer.index.milvus_store import MilvusStore

    client = connect(target.uri)
    rows = np.arange(len(items), dtype=np.int64)
    out = []
    for key, vectors in (
        ("image", image_vectors),
        ("fused", fuse(image_vectors, text_vectors, alpha=alpha)),
    ):
        store = MilvusStore.create(
            client,
            f"{target.collection}_{key}",
            dim=vectors.shape[1],
            index_type=index_type,
            params=params,
            no_damage_id=no_damage_id,
        )
        store.add(vectors, rows, items=items)
        store.uri = resolve_uri(target.uri)
        out.append(store)
    return out[0], out[1]


def open_stores(
    directory: Path, manifest: IndexManifest, items: Sequence[CatalogueItem], *, mmap: bool
) -> dict[str, VectorStoreProtocol]:
    """The stores the manifest records: FAISS files under ``directory`` or Milvus collections.

    Raises:
        MilvusUnavailableError: Milvus unreachable, or a collection missing or disagreeing.
    """
    spec = manifest.store
    if spec.kind == "faiss":
        return {
            key: VectorStore.load(
                directory / s.file, index_type=s.type, params=dict(s.params), mmap=mmap
            )
            for key, s in manifest.index.items()
        }
    from indexer.index.milvus_connection import connect, resolve_uri
    from indexer.index.milvus_store import MilvusStore

    client = connect(spec.uri)
    keys = [it.id for it in items]
    out: dict[str, VectorStoreProtocol] = {}
    for key, s in manifest.index.items():
        store = MilvusStore.open(
            client,
            f"{spec.collection}_{key}",
            index_type=spec.index_type,
            params=dict(spec.params),
            dim=s.dim,
            keys=keys,
            no_damage_id=manifest.taxonomy.no_damage_id,
        )
        store.uri = resolve_uri(spec.uri)
        out[key] = store
    return out


def make_region_store(
    table: RegionTable, item_ids: Sequence[str], *, like: VectorStoreProtocol
) -> VectorStoreProtocol:
    """A new region store over ``table``'s vectors (id = region row), on the backend of ``like``
    (the index's image store): a flat FAISS index, or the collection ``<name>_region`` created
    (replacing one of that name) on the same Milvus. ``item_ids[row]``: catalogue row -> item id.
    """
    vectors = np.ascontiguousarray(table.vectors, np.float32)
    rows = np.arange(len(table), dtype=np.int64)
    if store_section(like)["kind"] == "faiss":
        return VectorStore.build(vectors, rows, index_type="flat")
    from indexer.index.milvus_store import MilvusRegionStore, MilvusStore, region_entries

    if not isinstance(like, MilvusStore):
        raise TypeError(f"not a Milvus store: {type(like).__name__}")
    store = MilvusRegionStore.create(
        like.client,
        f"{like.describe()['collection']}_{REGION_SUFFIX}",
        dim=table.dim,
        index_type="flat",
        no_damage_id=like.no_damage_id,
    )
    store.add(vectors, rows, items=region_entries(table, item_ids))
    store.uri = like.uri
    return store


def open_region_store(
    directory: Path, manifest: IndexManifest, table: RegionTable, *, mmap: bool
) -> VectorStoreProtocol:
    """The region store the manifest's ``regions`` section names: the FAISS file under
    ``directory`` or the Milvus collection, bound to ``table``'s region ids.

    Raises:
        MilvusUnavailableError: Milvus unreachable, or the collection missing or disagreeing.
    """
    section = manifest.regions
    if section is None:
        raise ValueError("this index has no regions")
    spec = manifest.store
    if spec.kind == "faiss":
        return VectorStore.load(directory / section.file, index_type="flat", params={}, mmap=mmap)
    from indexer.index.milvus_connection import connect, resolve_uri
    from indexer.index.milvus_store import MilvusRegionStore

    store = MilvusRegionStore.open(
        connect(spec.uri),
        section.file,
        index_type="flat",
        params={},
        dim=section.dim,
        keys=[r.id for r in table.regions],
        no_damage_id=manifest.taxonomy.no_damage_id,
    )
    store.uri = resolve_uri(spec.uri)
    return store


def store_section(store: VectorStoreProtocol) -> dict[str, Any]:
    """The manifest's ``store`` section for the backend of ``store``."""
    describe = getattr(store, "describe", None)
    if describe is None:
        return {"kind": "faiss", "index_type": store.index_type, "params": store.params}
    section: dict[str, Any] = describe()
    return section
