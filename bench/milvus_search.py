"""The Milvus Lite rows of ``bench/search.py --store milvus-lite``: the same vectors and queries
through :class:`indexer.index.milvus_store.MilvusStore` (FLAT, HNSW, IVF_FLAT), in one Lite file.

Bytes/vector = the Lite data directory on disk / N (Milvus keeps its own copy; the artifact
directory still holds the float vectors for rerank). Latency is client-observed (gRPC to the local
Lite server, in-process client). Sizes are bounded (``MAX_N``): Lite is for tests and laptops.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from indexer.index.catalogue import CatalogueItem
from indexer.index.milvus_connection import connect
from indexer.index.milvus_store import MilvusStore

MAX_N = 100_000
CONFIGS = [
    ("flat", {}, [{}]),
    ("hnsw", {"M": 32, "efConstruction": 200}, [{"ef": 64}, {"ef": 128}]),
    ("ivfpq", {"nlist": 256}, [{"nprobe": 8}, {"nprobe": 32}]),  # Milvus IVF_FLAT
]


def _disk(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bench_milvus(x: np.ndarray, q: np.ndarray, exact: np.ndarray, k: int, single, recall) -> list:
    """Rows like bench/search.py's for each Milvus index type (``single``/``recall`` from there)."""
    n = len(x)
    if n > MAX_N:
        print(f"  milvus-lite skipped at N={n:,} (bounded to {MAX_N:,})", flush=True)
        return []
    rows = []
    items = [CatalogueItem(i, str(i), "", {}, "", "", "", "") for i in range(n)]
    ids = np.arange(n, dtype=np.int64)
    with tempfile.TemporaryDirectory(prefix="visrag-milvus-bench-") as tmp:
        client = connect(str(Path(tmp) / "bench.db"))
        for index_type, build_params, search_params in CONFIGS:
            t = time.perf_counter()
            try:
                store = MilvusStore.create(
                    client,
                    f"bench_{index_type}",
                    dim=x.shape[1],
                    index_type=index_type,
                    params=build_params,
                )
                store.add(x, ids, items=items)
                store.save(tmp)
                store.search(q[:1], k)  # the first search waits for the index to be built
            except Exception as exc:  # e.g. an index type this Lite build does not offer
                print(f"  milvus {index_type}: not available here ({exc})", flush=True)
                continue
            build_s = time.perf_counter() - t
            size = _disk(Path(tmp)) / n
            for sp in search_params:
                store.params.update(sp)
                single_s = single(lambda qq, s=store: s.search(qq, k), q)
                t = time.perf_counter()
                got = store.search(q, k)[1]
                batched = (time.perf_counter() - t) / len(q)
                row = {
                    "N": n,
                    "index": f"milvus-lite {index_type}",
                    "params": ", ".join(f"{a}={b}" for a, b in store.params.items()),
                    "build_s": build_s,
                    "bytes_per_vector": size,
                    "single_ms": single_s * 1e3,
                    "batched_ms": batched * 1e3,
                    "recall": recall(got, exact),
                }
                rows.append(row)
                print(
                    f"  milvus-lite {index_type:6s} {row['params']:30s} build {build_s:6.1f} s "
                    f"{size:7.0f} B/vec  single {single_s * 1e3:8.3f} ms  batched "
                    f"{batched * 1e3:7.3f} ms/q  recall@10 {row['recall']:.3f}",
                    flush=True,
                )
            client.drop_collection(f"bench_{index_type}")
    return rows
