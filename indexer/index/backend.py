"""The vector store seam: what the artifacts, the updater and the Retriever need of a store.

Two backends satisfy :class:`VectorStoreProtocol`: :class:`indexer.index.store.VectorStore`
(FAISS files in the artifact directory, the default) and
:class:`indexer.index.milvus_store.MilvusStore` (a Milvus collection). Ids are catalogue rows
either way. A store that keeps the catalogue's scalar fields (Milvus) also satisfies
:class:`FilteringStore`: filters and exclusions are pushed down into its search.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from indexer.index.catalogue import CatalogueItem
    from indexer.query import Filters

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

    def add(
        self, vectors: npt.ArrayLike, ids: npt.ArrayLike, *, items: Sequence[CatalogueItem] = ()
    ) -> None: ...

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
