"""The vector store: a FAISS inner-product index over unit vectors with stable int64 ids.

Index types:
- ``flat`` (default): exact search, ``IndexIDMap2(IndexFlatIP)``.
- ``hnsw``: ``IndexIDMap2(IndexHNSWFlat)``; params ``M`` (32), ``efConstruction`` (200),
  ``efSearch`` (128). FAISS cannot remove from an HNSW graph, so :meth:`VectorStore.remove`
  rebuilds the graph from the vectors it stores (exact copies), which costs a build.
- ``ivfpq``: ``IndexIDMap2(IndexRefineFlat(IndexIVFPQ))``: PQ codes pick a shortlist that the
  refine stage re-scores exactly; ``k_factor=0`` builds a bare ``IndexIVFPQ`` with native ids.
  Its params, search parameters and removal live in :mod:`indexer.index.ivfpq`.

Filters are applied inside the search with a FAISS ID selector, so a filtered query returns k
results whenever at least k ids are allowed: HNSW raises ``efSearch`` and IVF raises ``nprobe``
with the filter's selectivity, and any query row still short of k is answered again exactly over
the allowed subset (HNSW) or over every inverted list (IVF).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from indexer.errors import IndexFileMismatchError
from indexer.index import ivfpq
from models.fusion import fuse

logger = logging.getLogger(__name__)

INDEX_TYPES: tuple[str, ...] = ("flat", "hnsw", "ivfpq")
Ids = npt.NDArray[np.int64]
Vectors = npt.NDArray[np.float32]


_METRICS = {faiss.METRIC_INNER_PRODUCT: "inner_product", faiss.METRIC_L2: "l2"}


@dataclass(frozen=True)
class IndexFacts:
    """What a FAISS index file holds, read from the index itself (not from any manifest)."""

    type: str  # one of INDEX_TYPES, else the FAISS class name
    metric: str  # "inner_product", "l2", else "faiss metric <n>"
    dim: int
    count: int


def index_facts(index: faiss.Index) -> IndexFacts:
    """The type, metric, dim and count of a FAISS index as its structure says."""
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index
    if isinstance(inner, faiss.IndexRefine):
        inner = faiss.downcast_index(inner.base_index)
    if isinstance(inner, faiss.IndexFlat):
        kind = "flat"
    elif isinstance(inner, faiss.IndexHNSW):
        kind = "hnsw"
    elif isinstance(inner, faiss.IndexIVFPQ):
        kind = "ivfpq"
    else:
        kind = type(inner).__name__
    metric = _METRICS.get(index.metric_type, f"faiss metric {index.metric_type}")
    return IndexFacts(type=kind, metric=metric, dim=int(index.d), count=int(index.ntotal))


def _as_vectors(x: npt.ArrayLike, dim: int | None = None) -> Vectors:
    arr = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or (dim is not None and arr.shape[1] != dim):
        raise ValueError(f"expected vectors of shape (n, {dim}), got {arr.shape}")
    return arr


def _as_ids(ids: npt.ArrayLike) -> Ids:
    return np.ascontiguousarray(np.asarray(ids, dtype=np.int64).ravel())


class VectorStore:
    """FAISS index wrapper: build, filtered search, add/remove by id, save/load (mmap)."""

    def __init__(self, index: faiss.Index, *, index_type: str, params: dict[str, Any]) -> None:
        self.index = index
        self.index_type = index_type
        self.params = dict(params)

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        vectors: npt.ArrayLike,
        ids: npt.ArrayLike,
        *,
        index_type: str = "flat",
        params: dict[str, Any] | None = None,
    ) -> VectorStore:
        """Index unit ``vectors`` (n, d) under int64 ``ids`` (n,); inner product = cosine."""
        x = _as_vectors(vectors)
        id_arr = _as_ids(ids)
        if len(id_arr) != len(x):
            raise ValueError(f"{len(x)} vectors but {len(id_arr)} ids")
        if len(np.unique(id_arr)) != len(id_arr):
            raise ValueError("ids must be unique")
        dim = x.shape[1]
        params = dict(params or {})
        index: faiss.Index
        if index_type == "flat":
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        elif index_type == "hnsw":
            params = {
                "M": int(params.get("M", 32)),
                "efConstruction": int(params.get("efConstruction", 200)),
                "efSearch": int(params.get("efSearch", 128)),
            }
            inner = faiss.IndexHNSWFlat(dim, params["M"], faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = params["efConstruction"]
            inner.hnsw.efSearch = params["efSearch"]
            index = faiss.IndexIDMap2(inner)
        elif index_type == "ivfpq":
            params = ivfpq.fill_params(dim, len(x), params)
            index = ivfpq.train_index(x, params)
        else:
            raise ValueError(f"unknown index type {index_type!r}; choose one of {INDEX_TYPES}")
        store = cls(index, index_type=index_type, params=params)
        if len(x):
            store.index.add_with_ids(x, id_arr)
        return store

    # -- properties --------------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def _native_ids(self) -> bool:
        """A bare IVF-PQ keeps the ids in its inverted lists; every other index in an ID map."""
        return self.index_type == "ivfpq" and ivfpq.stages(self.index)[1] is None

    def ids(self) -> Ids:
        """All ids held, in internal order."""
        if self._native_ids():
            return ivfpq.list_ids(self.index)
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    # -- search ------------------------------------------------------------------------------
    def search(
        self, queries: npt.ArrayLike, k: int, *, allowed: npt.ArrayLike | None = None
    ) -> tuple[Vectors, Ids]:
        """Top-k by inner product: ``(scores (m, k) float32, ids (m, k) int64)``.

        Missing results (fewer than k ids held or allowed) are padded with id -1, score -inf.
        ``allowed`` restricts the search to those ids, inside the index.
        """
        q = _as_vectors(queries, self.dim)
        if k < 1:
            raise ValueError("k must be >= 1")
        m = len(q)
        scores = np.full((m, k), -np.inf, dtype=np.float32)
        ids = np.full((m, k), -1, dtype=np.int64)
        if self.ntotal == 0 or m == 0:
            return scores, ids
        if allowed is None:
            d, i = self.index.search(q, k, params=self._params(None, None))
        else:
            allowed_ids = _as_ids(allowed)
            if len(allowed_ids) == 0:
                return scores, ids
            d, i = self._filtered(q, k, allowed_ids)
        d = np.where(i < 0, -np.inf, d).astype(np.float32)
        return d, i.astype(np.int64)

    def _params(self, sel: faiss.IDSelector | None, boost: float | None) -> Any:
        if self.index_type == "hnsw":
            ef = self.params["efSearch"]
            if boost:
                ef = int(min(max(ef * boost, ef), max(self.ntotal, ef)))
            return (
                faiss.SearchParametersHNSW(sel=sel, efSearch=ef)
                if sel
                else (faiss.SearchParametersHNSW(efSearch=ef))
            )
        if self.index_type == "ivfpq":
            nprobe = self.params["nprobe"]
            if boost:
                nprobe = int(min(max(math.ceil(nprobe * boost), nprobe), self.params["nlist"]))
            return self._ivf_params(sel, nprobe)
        return faiss.SearchParameters(sel=sel) if sel is not None else None

    def _ivf_params(self, sel: faiss.IDSelector | None, nprobe: int) -> Any:
        return ivfpq.search_params(self.index, self.params, sel, nprobe)

    def _filtered(self, q: Vectors, k: int, allowed: Ids) -> tuple[Vectors, Ids]:
        sel = faiss.IDSelectorBatch(allowed)
        boost = self.ntotal / max(len(allowed), 1)
        params = self._params(sel, boost)
        d, i = self.index.search(q, k, params=params)
        want = min(k, len(allowed))
        short = np.flatnonzero((i >= 0).sum(axis=1) < want)
        if len(short) and self.index_type != "flat":
            logger.debug(
                "filtered %s search short for %d queries; exact pass", self.index_type, len(short)
            )
            d2, i2 = self._exhaustive(q[short], k, allowed, sel)
            d[short], i[short] = d2, i2
        return d, i

    def _exhaustive(
        self, q: Vectors, k: int, allowed: Ids, sel: faiss.IDSelector
    ) -> tuple[Vectors, Ids]:
        if self.index_type == "ivfpq":
            params = self._ivf_params(sel, self.params["nlist"])
            return self.index.search(q, k, params=params)
        present = allowed[np.isin(allowed, self.ids())]
        vecs = (
            np.vstack([self.index.reconstruct(int(j)) for j in present])
            if len(present)
            else (np.zeros((0, self.dim), np.float32))
        )
        d, pos = faiss.knn(q, vecs, min(k, len(present)), metric=faiss.METRIC_INNER_PRODUCT)
        out_d = np.full((len(q), k), -np.inf, np.float32)
        out_i = np.full((len(q), k), -1, np.int64)
        out_d[:, : d.shape[1]] = d
        out_i[:, : pos.shape[1]] = np.where(pos >= 0, present[np.maximum(pos, 0)], -1)
        return out_d, out_i

    # -- mutation ----------------------------------------------------------------------------
    def add(self, vectors: npt.ArrayLike, ids: npt.ArrayLike, *, items: Sequence[Any] = ()) -> None:
        """Add vectors under new ids (an id already held raises ``ValueError``; ``items``, the
        scalar fields a Milvus store keeps, are not needed here)."""
        x = _as_vectors(vectors, self.dim)
        id_arr = _as_ids(ids)
        if len(id_arr) != len(x):
            raise ValueError(f"{len(x)} vectors but {len(id_arr)} ids")
        clash = np.intersect1d(id_arr, self.ids())
        if len(clash) or len(np.unique(id_arr)) != len(id_arr):
            raise ValueError(f"ids already present or repeated: {clash[:10].tolist()}")
        if len(x):
            self.index.add_with_ids(x, id_arr)

    def remove(self, ids: npt.ArrayLike) -> int:
        """Remove ids; returns how many were removed. HNSW: rebuilds the graph (see module doc)."""
        id_arr = _as_ids(ids)
        if self.index_type == "ivfpq" and not self._native_ids():
            return ivfpq.remove_refined(self.index, self.ids(), id_arr)
        if self.index_type != "hnsw":
            return int(self.index.remove_ids(faiss.IDSelectorBatch(id_arr)))
        held = self.ids()
        keep = ~np.isin(held, id_arr)
        removed = int((~keep).sum())
        if removed:
            inner = faiss.downcast_index(self.index.index)
            vecs = inner.reconstruct_n(0, inner.ntotal)[keep]
            rebuilt = VectorStore.build(vecs, held[keep], index_type="hnsw", params=self.params)
            self.index = rebuilt.index
        return removed

    def renumber(self, old_ids: npt.ArrayLike, new_ids: npt.ArrayLike) -> None:
        """Relabel held ids in place (``old_ids[i] -> new_ids[i]``; every held id listed)."""
        old, new = _as_ids(old_ids), _as_ids(new_ids)
        if self._native_ids():
            ivfpq.relabel_lists(self.index, old, new)
            return
        order = np.argsort(old)
        old, new = old[order], new[order]
        held = self.ids()
        pos = np.searchsorted(old, held)
        if len(held) and (pos.max() >= len(old) or (old[pos] != held).any()):
            raise ValueError("renumber: a held id has no new id")
        faiss.copy_array_to_vector(new[pos], self.index.id_map)
        self.index.construct_rev_map()

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        faiss.write_index(self.index, str(path))

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        index_type: str,
        params: dict[str, Any] | None = None,
        mmap: bool = False,
    ) -> VectorStore:
        """Read an index; ``mmap`` maps its data read-only instead of copying it into RAM.

        Raises:
            IndexFileMismatchError: the file holds another type than ``index_type``, or a metric
                other than inner product.
        """
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        index = faiss.read_index(str(path), flags)
        facts = index_facts(index)
        name = Path(path).name
        if facts.type != index_type:
            raise IndexFileMismatchError(name, "type", manifest=index_type, found=facts.type)
        if facts.metric != "inner_product":
            raise IndexFileMismatchError(
                name, "metric", manifest="inner_product", found=facts.metric
            )
        store = cls(index, index_type=index_type, params=dict(params or {}))
        if index_type == "hnsw":
            store.params.setdefault("efSearch", 128)
            faiss.downcast_index(index.index).hnsw.efSearch = store.params["efSearch"]
        elif index_type == "ivfpq":
            ivf, refine = ivfpq.stages(index)
            store.params.setdefault("nlist", int(ivf.nlist))
            store.params.setdefault("nprobe", int(ivf.nprobe))
            store.params.setdefault("k_factor", int(refine.k_factor) if refine is not None else 0)
        return store


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
