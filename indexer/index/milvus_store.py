"""The Milvus backend of :class:`indexer.index.stores.VectorStoreProtocol` (``visrag[milvus]``).

An index on Milvus is two collections, ``<name>_image`` and ``<name>_fused``, holding per item
its id (primary key), one vector and the fields filters need (``labels``, the no-damage id when
none; ``zone``, ``area``, ``grp``, ``description``, ``image``), and with a region table a third,
``<name>_region`` (:class:`MilvusRegionStore`: per region its id, one vector, ``item`` (the
item id), ``labels``, ``kind``). The artifact directory keeps the manifest, the vectors (rerank,
exact sweeps), the SQLite catalogue and region table (the source of truth for items and regions);
rows map to ids through the catalogue (or region table) a store is bound to. Filters become Milvus
expressions (``ARRAY_CONTAINS_ANY/ALL``, ``zone in``, ``id not in``...): k hits when k match.
Writers and every generation a service opens share the collections: a store skips the ids its
catalogue does not know (a writer's add, until the index is opened again: a reload).

Connection: :mod:`indexer.index.milvus_connection`. Index types: ``flat`` -> FLAT (exact, as
FAISS flat), ``hnsw`` -> HNSW (``M``, ``efConstruction``, ``ef``), ``ivfpq`` -> IVF_FLAT.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt

from indexer.index.catalogue import CatalogueItem
from indexer.index.milvus_connection import MilvusUnavailableError, public_uri

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from indexer.index.regions import RegionTable
    from indexer.query import Filters

MILVUS_INDEX = {"flat": "FLAT", "hnsw": "HNSW", "ivfpq": "IVF_FLAT"}
FIELDS = ("id", "vector", "labels", "zone", "area", "grp", "description", "image")
REGION_FIELDS = ("id", "vector", "item", "labels", "kind")
_BATCH = 1000
_MAX_TEXT = 4096
_MAX_LIMIT = 16384  # Milvus' largest topk
_S = TypeVar("_S", bound="MilvusStore")


def filter_expression(filters: Filters | None, excluded_ids: Sequence[str] = ()) -> str:
    """The Milvus boolean expression of an item filter and excluded ids ("" = everything)."""
    parts = []
    if filters is not None:
        if filters.labels_any:
            parts.append(f"ARRAY_CONTAINS_ANY(labels, {json.dumps(list(filters.labels_any))})")
        if filters.labels_all:
            parts.append(f"ARRAY_CONTAINS_ALL(labels, {json.dumps(list(filters.labels_all))})")
        if filters.zones:
            parts.append(f"zone in {json.dumps(list(filters.zones))}")
        if filters.areas:
            parts.append(f"area in {json.dumps(list(filters.areas))}")
    if excluded_ids:
        parts.append(f"id not in {json.dumps(list(excluded_ids))}")
    return " and ".join(parts)


class MilvusStore:
    """One Milvus collection as a row-keyed vector store, bound to the catalogue's ids."""

    pushes_filters = True
    fields: tuple[str, ...] = FIELDS

    def __init__(
        self,
        client: MilvusClient,
        collection: str,
        *,
        dim: int,
        index_type: str,
        params: dict[str, Any],
        keys: Sequence[str],
        no_damage_id: str,
    ) -> None:
        self.client = client
        self.collection = collection
        self._dim = dim
        self.index_type = index_type
        self.params = dict(params)
        self.no_damage_id = no_damage_id
        self.uri = ""  # as connected to (set by indexer.index.stores); recorded without secrets
        self.bind(keys)

    def bind(self, keys: Sequence[str]) -> None:
        """The catalogue this store answers for: ``keys[row]`` is the item id of that row."""
        self._keys = list(keys)
        self._rows = {key: row for row, key in enumerate(self._keys)}

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def create(
        cls: type[_S],
        client: MilvusClient,
        collection: str,
        *,
        dim: int,
        index_type: str = "flat",
        params: dict[str, Any] | None = None,
        no_damage_id: str = "no_damage",
    ) -> _S:
        """Create (replacing any collection of that name) an empty collection."""
        from pymilvus import DataType, MilvusClient

        if index_type not in MILVUS_INDEX:
            raise ValueError(
                f"unknown index type {index_type!r}; choose one of {tuple(MILVUS_INDEX)}"
            )
        params = _index_params(index_type, params or {})
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=512)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field(
            "labels",
            DataType.ARRAY,
            element_type=DataType.VARCHAR,
            max_capacity=256,
            max_length=128,
        )
        for name in cls.fields:
            if name not in ("id", "vector", "labels"):
                schema.add_field(name, DataType.VARCHAR, max_length=_MAX_TEXT)
        index = client.prepare_index_params()
        build = {k: v for k, v in params.items() if k in ("M", "efConstruction", "nlist")}
        index.add_index(
            "vector", index_type=MILVUS_INDEX[index_type], metric_type="IP", params=build
        )
        if client.has_collection(collection):
            client.drop_collection(collection)
        client.create_collection(
            collection, schema=schema, index_params=index, consistency_level="Strong"
        )
        return cls(
            client,
            collection,
            dim=dim,
            index_type=index_type,
            params=params,
            keys=(),
            no_damage_id=no_damage_id,
        )

    @classmethod
    def open(
        cls: type[_S],
        client: MilvusClient,
        collection: str,
        *,
        index_type: str,
        params: dict[str, Any],
        dim: int,
        keys: Sequence[str],
        no_damage_id: str,
    ) -> _S:
        """Open an existing collection, checked against the manifest (missing: a clear error)."""
        where = f"Milvus collection {collection!r}"
        try:
            if not client.has_collection(collection):
                raise MilvusUnavailableError(f"{where} does not exist (was the index built there?)")
            client.load_collection(collection)
            info = client.describe_collection(collection)
            index = client.describe_index(collection, "vector")
        except MilvusUnavailableError:
            raise
        except Exception as exc:
            raise MilvusUnavailableError(f"cannot read {where}: {exc}") from exc
        fields = {f["name"]: f for f in info["fields"]}
        problems = [f"field {name!r} missing" for name in cls.fields if name not in fields]
        held_dim = int(fields.get("vector", {}).get("params", {}).get("dim", -1))
        if held_dim != dim:
            problems.append(f"vector dim {held_dim}, manifest {dim}")
        if index.get("metric_type") != "IP":
            problems.append(f"metric {index.get('metric_type')}, manifest inner_product")
        if index.get("index_type") != MILVUS_INDEX.get(index_type):
            problems.append(f"index {index.get('index_type')}, manifest {index_type}")
        if problems:
            raise MilvusUnavailableError(
                f"{where} disagrees with the manifest: " + "; ".join(problems)
            )
        return cls(
            client,
            collection,
            dim=dim,
            index_type=index_type,
            params=dict(params),
            keys=keys,
            no_damage_id=no_damage_id,
        )

    # -- properties ------------------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        rows = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    @property
    def dim(self) -> int:
        return self._dim

    def ids(self) -> npt.NDArray[np.int64]:
        """Rows of every held id the bound catalogue knows (-1 for ids it does not)."""
        held: list[int] = []
        it = self.client.query_iterator(
            self.collection, batch_size=_BATCH, filter="", output_fields=["id"]
        )
        while batch := it.next():
            held.extend(self._rows.get(r["id"], -1) for r in batch)
        it.close()
        return np.array(held, dtype=np.int64)

    def problem(self) -> str | None:
        try:
            if not self.client.has_collection(self.collection):
                return f"Milvus collection {self.collection!r} is missing"
        except Exception as exc:
            return f"Milvus unreachable: {exc}"
        return None

    # -- search ----------------------------------------------------------------------------------
    def _search(self, queries: npt.ArrayLike, k: int, expr: str) -> list[list[tuple[int, float]]]:
        """Per query the top-k ``(row, score)`` of ids the bound catalogue knows: ids it does not
        know yet (a writer's add, not reloaded) are skipped, and more fetched until k are known."""
        q = np.asarray(queries, dtype=np.float32).reshape(-1, self._dim).tolist()
        limit = k
        while True:
            params = _search_params(self.index_type, self.params, limit)
            try:
                res = self.client.search(
                    self.collection,
                    data=q,
                    limit=limit,
                    filter=expr,
                    search_params={"metric_type": "IP", "params": params},
                    output_fields=[],
                )
            except Exception as exc:  # unreachable, collection dropped: the service answers 503
                raise MilvusUnavailableError(f"Milvus search failed: {exc}") from exc
            out, unknown = [], 0
            for hits in res:
                known = [h for h in hits if h["id"] in self._rows]
                if len(known) < k and len(hits) == limit:  # skipped ids hid known ones below
                    unknown = max(unknown, limit - len(known))
                pairs = [(self._rows[h["id"]], float(h["distance"])) for h in known]
                out.append(sorted(pairs, key=lambda p: (-p[1], p[0])))  # ties by row, as FAISS
            if not unknown or limit >= _MAX_LIMIT:
                return out
            limit = min(_MAX_LIMIT, limit + unknown)

    def search(
        self, queries: npt.ArrayLike, k: int, *, allowed: npt.ArrayLike | None = None
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Top-k like :meth:`VectorStore.search` (padded with -1 / -inf)."""
        if k < 1:
            raise ValueError("k must be >= 1")
        found = self._search(queries, k, self._allowed_expression(allowed))
        scores = np.full((len(found), k), -np.inf, np.float32)
        ids = np.full((len(found), k), -1, np.int64)
        for i, pairs in enumerate(found):
            for j, (row, score) in enumerate(pairs[:k]):
                ids[i, j], scores[i, j] = row, score
        return scores, ids

    def _allowed_expression(self, allowed: npt.ArrayLike | None) -> str:
        """``allowed`` rows as an expression: the shorter of ``id in`` those and ``id not in``
        the other known ones (an exclusion of a few items stays a short expression)."""
        if allowed is None:
            return ""
        rows = np.unique(np.asarray(allowed, np.int64).ravel())
        rows = rows[(rows >= 0) & (rows < len(self._keys))]
        if 2 * len(rows) <= len(self._keys):
            return f"id in {json.dumps([self._keys[int(r)] for r in rows])}"
        mask = np.ones(len(self._keys), bool)
        mask[rows] = False
        others = [self._keys[int(r)] for r in np.flatnonzero(mask) if self._keys[int(r)]]
        return f"id not in {json.dumps(others)}" if others else ""

    def search_filtered(
        self, query: npt.NDArray[np.float32], k: int, *, filters: Filters | None, excluded: set[int]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        expr = filter_expression(filters, [self._keys[r] for r in sorted(excluded)])
        pairs = self._search(query, k, expr)[0][:k]
        return (
            np.array([r for r, _ in pairs], np.int64),
            np.array([s for _, s in pairs], np.float32),
        )

    # -- mutation --------------------------------------------------------------------------------
    def add(self, vectors: npt.ArrayLike, ids: npt.ArrayLike, *, items: Sequence[Any] = ()) -> None:
        """Insert ``items`` (their scalar fields; each has an ``id``: :class:`CatalogueItem` s,
        or :class:`RegionEntry` s in a region store) with ``vectors`` at rows ``ids``."""
        x = np.asarray(vectors, dtype=np.float32).reshape(-1, self._dim)
        rows = np.asarray(ids, dtype=np.int64).ravel()
        if not len(x) == len(rows) == len(items):
            raise ValueError(f"{len(x)} vectors, {len(rows)} ids, {len(items)} items")
        clash = [it.id for it in items if it.id in self._rows]
        if clash:
            raise ValueError(f"ids already present: {clash[:10]}")
        for start in range(0, len(items), _BATCH):
            chunk = enumerate(items[start : start + _BATCH], start)
            self.client.insert(self.collection, [self._entity(it, x[i]) for i, it in chunk])
        keys = self._keys + [""] * max(0, int(rows.max(initial=-1)) + 1 - len(self._keys))
        for row, it in zip(rows, items, strict=True):
            keys[int(row)] = it.id
        self.bind(keys)

    def _entity(self, item: Any, vector: npt.NDArray[np.float32]) -> dict[str, Any]:
        if not isinstance(item, CatalogueItem):
            raise TypeError(f"an item store takes CatalogueItem rows, got {type(item).__name__}")
        return {
            "id": item.id,
            "vector": vector.tolist(),
            "labels": list(item.labels) or [self.no_damage_id],
            "zone": item.zone,
            "area": item.area,
            "grp": item.group,
            "description": item.description[:_MAX_TEXT],
            "image": item.image[:_MAX_TEXT],
        }

    def remove(self, ids: npt.ArrayLike) -> int:
        """Delete the items at these rows; the rows of the rest follow :meth:`renumber`."""
        n = len(self._keys)
        keys = [self._keys[int(r)] for r in np.asarray(ids).ravel() if 0 <= int(r) < n]
        if keys:
            self.client.delete(self.collection, filter=f"id in {json.dumps(keys)}")
        return len(keys)

    def renumber(self, old_ids: npt.ArrayLike, new_ids: npt.ArrayLike) -> None:
        """Rows moved (a removal compacted the catalogue): only the row -> id binding changes."""
        old = np.asarray(old_ids, np.int64).ravel()
        new = np.asarray(new_ids, np.int64).ravel()
        keys = [""] * (int(new.max(initial=-1)) + 1)
        for o, n in zip(old, new, strict=True):
            keys[int(n)] = self._keys[int(o)]
        self.bind(keys)

    def save(self, path: str | Path) -> None:
        """Nothing to write: the collection is the store (flushed so other clients see it)."""
        self.client.flush(self.collection)

    def describe(self) -> dict[str, Any]:
        """The manifest's ``store`` section (no secrets)."""
        base = self.collection.rsplit("_", 1)[0]
        return {
            "kind": "milvus",
            "uri": public_uri(self.uri),
            "collection": base,
            "metric": "inner_product",
            "index_type": self.index_type,
            "params": self.params,
        }


class RegionEntry(NamedTuple):
    """A region's scalar fields in the region collection."""

    id: str
    item: str  # the id of its item (image)
    labels: tuple[str, ...]
    kind: str


def region_entries(table: RegionTable, item_ids: Sequence[str]) -> list[RegionEntry]:
    """The entries of a region table's rows (``item_ids[row]``: the id of catalogue row)."""
    return [RegionEntry(r.id, item_ids[r.item], tuple(r.labels), table.kind) for r in table.regions]


class MilvusRegionStore(MilvusStore):
    """The region collection ``<name>_region``: rows are region rows, keys the region ids.

    Always FLAT (exact, as the FAISS region index). Its items are :class:`RegionEntry` s.
    """

    fields = REGION_FIELDS

    def _entity(self, item: Any, vector: npt.NDArray[np.float32]) -> dict[str, Any]:
        if not isinstance(item, RegionEntry):
            raise TypeError(f"a region store takes RegionEntry rows, got {type(item).__name__}")
        return {
            "id": item.id,
            "vector": vector.tolist(),
            "item": item.item[:_MAX_TEXT],
            "labels": list(item.labels) or [self.no_damage_id],
            "kind": item.kind,
        }


def _index_params(index_type: str, given: dict[str, Any]) -> dict[str, Any]:
    if index_type == "hnsw":
        return {
            "M": int(given.get("M", 32)),
            "efConstruction": int(given.get("efConstruction", 200)),
            "ef": int(given.get("ef", given.get("efSearch", 128))),
        }
    if index_type == "ivfpq":
        return {"nlist": int(given.get("nlist", 128)), "nprobe": int(given.get("nprobe", 16))}
    return {}


def _search_params(index_type: str, params: dict[str, Any], k: int) -> dict[str, Any]:
    if index_type == "hnsw":
        return {"ef": max(int(params.get("ef", 128)), k)}
    if index_type == "ivfpq":
        return {"nprobe": params.get("nprobe", 16)}
    return {}
