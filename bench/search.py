"""Vector search benchmark: flat vs HNSW vs IVF-PQ through indexer.index.store.VectorStore.

For each collection size N (10k, 100k, 1M; ``--quick``: 10k and 100k) and d = 384 + 768 = 1152
(fused ViT-B image + MiniLM text vectors, alpha 0.6) it measures, in the same run
(``--store milvus-lite|both``: also Milvus Lite collections, bench/milvus_search.py):

- the memory-bandwidth bound of one exact query: bytes scanned (N·d·4) / copy bandwidth measured
  with a large numpy copy (bytes read + bytes written per second);
- a numpy baseline: ``X @ q`` + ``argpartition`` (one query) and ``X @ Q.T`` (a batch);
- per index: build time, bytes per vector (serialised index / N; for IVF-PQ this includes the
  refine stage's float vectors, and the split is printed), single-query latency (median over the
  queries, one at a time, one thread), batched latency per query (all queries in one
  call, all threads), recall@10 against exact search.

Data is synthetic but shaped like the real thing: image halves are noisy samples around N/100
cluster centres (neighbour cosines ~0.6), text halves are drawn from 300 distinct template
descriptions (many exact duplicates, as templated descriptions are). Queries are fresh samples
from the same clusters. Run: ``python bench/search.py --quick [--out results.json]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import cpu_model  # noqa: E402
from indexer.index.store import VectorStore  # noqa: E402

DI, DT, ALPHA, K = 768, 384, 0.6, 10


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


class Data:
    """Deterministic generator of fused vectors (chunked, so 1M x 1152 stays at 4.6 GB)."""

    def __init__(self, n: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.centres = unit(rng.normal(size=(max(n // 100, 10), DI)))
        self.texts = unit(rng.normal(size=(300, DT)))
        self.seed = seed

    def sample(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, seed])
        out = np.empty((n, DI + DT), np.float32)
        for s in range(0, n, 50_000):
            m = min(50_000, n - s)
            c = rng.integers(0, len(self.centres), m)
            img = unit(self.centres[c] + rng.normal(scale=0.03, size=(m, DI)).astype(np.float32))
            txt = self.texts[(c * 7 + rng.integers(0, 3, m)) % len(self.texts)]
            out[s : s + m, :DI] = np.sqrt(ALPHA) * img
            out[s : s + m, DI:] = np.sqrt(1 - ALPHA) * txt
        return out


def copy_bandwidth(nbytes: int = 1 << 30, repeats: int = 5) -> float:
    """Bytes moved per second (read + write) by a large numpy copy: the best of a few."""
    a = np.ones(nbytes // 4, np.float32)
    b = np.empty_like(a)
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t)
    return 2 * nbytes / best


def timed(fn, repeats: int = 1) -> float:
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def single_latency(search, queries: np.ndarray) -> float:
    """Median seconds of one query at a time, on one thread (after one warm-up query).

    One thread: a service answers many small queries concurrently, and on this shared 2-core
    machine OpenMP barriers of a 2-thread single-query search stall whenever the other core is
    busy (seen as 20 ms outliers).
    """
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        with threadpool_limits(1):
            search(queries[:1])
            times = []
            for q in queries:
                t = time.perf_counter()
                search(q[None])
                times.append(time.perf_counter() - t)
    finally:
        faiss.omp_set_num_threads(threads)
    return float(np.median(times))


def numpy_topk(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    s = q @ x.T
    part = np.argpartition(-s, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(s, part, 1), axis=1)
    return np.take_along_axis(part, order, 1)


def recall(got: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(g) & set(e)) / len(e) for g, e in zip(got, exact, strict=True)]))


def bench_size(n: int, n_queries: int, bandwidth: float, stores=("faiss",)) -> list[dict]:
    data = Data(n)
    t = time.perf_counter()
    x = data.sample(n, seed=1)
    print(f"\nN={n:,}: generated {x.nbytes / 1e9:.2f} GB in {time.perf_counter() - t:.1f} s",
          flush=True)  # fmt: skip
    q = data.sample(n_queries, seed=2)
    ids = np.arange(n, dtype=np.int64)
    exact = numpy_topk(x, q, K)
    rows = []
    bound = x.nbytes / bandwidth
    np_single = single_latency(lambda qq: numpy_topk(x, qq, K), q[:30])
    np_batch = timed(lambda: numpy_topk(x, q, K), 2) / n_queries
    rows.append({"N": n, "index": "bandwidth bound", "params": f"{bandwidth / 1e9:.1f} GB/s copy",
                 "single_ms": bound * 1e3})  # fmt: skip
    rows.append(
        {
            "N": n,
            "index": "numpy matmul",
            "params": "",
            "bytes_per_vector": 4 * x.shape[1],
            "single_ms": np_single * 1e3,
            "batched_ms": np_batch * 1e3,
            "recall": 1.0,
        }
    )
    configs = [
        ("flat", {}, [{}]),
        ("hnsw", {"M": 32, "efConstruction": 200},
         [{"efSearch": ef} for ef in (32, 64, 128, 256)]),
        # k_factor=1: the PQ ranking alone (re-scoring only its own top k cannot change the set)
        ("ivfpq", {"m": (DI + DT) // 8, "nbits": 8, "k_factor": 8},
         [{"nprobe": 8, "k_factor": 1}, {"nprobe": 8, "k_factor": 8},
          {"nprobe": 32, "k_factor": 8}, {"nprobe": 32, "k_factor": 16},
          {"nprobe": 128, "k_factor": 8}]),
    ]  # fmt: skip
    if "milvus-lite" in stores:  # beside FAISS, on the same vectors and queries
        from bench.milvus_search import bench_milvus

        rows += bench_milvus(x, q, exact, K, single_latency, recall)
    for index_type, build_params, search_params in configs:
        if "faiss" not in stores:
            break
        t = time.perf_counter()
        store = VectorStore.build(x, ids, index_type=index_type, params=build_params)
        build_s = time.perf_counter() - t
        size = len(faiss.serialize_index(store.index)) / n
        if index_type == "ivfpq":  # the whole index: codes + the refine stage's float vectors
            codes = len(faiss.serialize_index(faiss.downcast_index(store.index.index).base_index))
            print(f"  ivfpq bytes/vector {size:.0f}: IVF-PQ codes and lists {codes / n:.0f}, "
                  f"refine vectors and id map {size - codes / n:.0f}", flush=True)  # fmt: skip
        for sp in search_params:
            store.params.update(sp)
            if index_type == "hnsw":
                faiss.downcast_index(store.index.index).hnsw.efSearch = sp["efSearch"]
            single = single_latency(lambda qq, s=store: s.search(qq, K), q)
            batched = timed(lambda s=store: s.search(q, K), 2) / n_queries
            got = store.search(q, K)[1]
            row = {"N": n, "index": index_type,
                   "params": ", ".join(f"{k}={v}" for k, v in store.params.items()),
                   "build_s": build_s, "bytes_per_vector": size, "single_ms": single * 1e3,
                   "batched_ms": batched * 1e3, "recall": recall(got, exact)}  # fmt: skip
            rows.append(row)
            print(
                f"  {index_type:6s} {row['params']:45s} build {build_s:7.1f} s  "
                f"{size:7.0f} B/vec  single {single * 1e3:8.3f} ms  batched "
                f"{batched * 1e3:7.3f} ms/q  recall@10 {row['recall']:.3f}",
                flush=True,
            )
        del store
    flat = next((r for r in rows if r["index"] == "flat"), None) or next(
        (r for r in rows if r["index"] == "milvus-lite flat"), rows[1]
    )  # FAISS flat when it ran
    for r in rows:
        if r.get("single_ms"):
            r["speedup_vs_flat"] = flat["single_ms"] / r["single_ms"]
    print(
        f"  bound {bound * 1e3:.3f} ms, numpy {np_single * 1e3:.3f} ms, flat "
        f"{flat['single_ms']:.3f} ms = {flat['single_ms'] / (bound * 1e3):.2f}x bound"
    )
    return rows


def markdown(rows: list[dict]) -> str:
    head = ("| N | index | params | build s | bytes/vector | single query ms | batched ms/query "
            "| recall@10 | speed-up vs flat (single) |")  # fmt: skip
    lines = [head, "|" + "---|" * 9]

    def f(v, fmt):
        return "" if v is None else format(v, fmt)

    for r in rows:
        lines.append(
            f"| {r['N']:,} | {r['index']} | {r['params']} | {f(r.get('build_s'), '.1f')} "
            f"| {f(r.get('bytes_per_vector'), '.0f')} | {f(r.get('single_ms'), '.3f')} "
            f"| {f(r.get('batched_ms'), '.3f')} | {f(r.get('recall'), '.3f')} "
            f"| {f(r.get('speedup_vs_flat'), '.1f')} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 10k and 100k only")
    parser.add_argument("--sizes", help="comma list of N (overrides --quick)")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    parser.add_argument(
        "--store", choices=("faiss", "milvus-lite", "both"), default="faiss",
        help="FAISS indexes, Milvus Lite collections (N <= 100k), or both",
    )  # fmt: skip
    args = parser.parse_args()
    stores = ("faiss", "milvus-lite") if args.store == "both" else (args.store,)
    sizes = ([int(s) for s in args.sizes.split(",")] if args.sizes
             else [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000])  # fmt: skip
    print(f"machine: {cpu_model()}, {faiss.omp_get_max_threads()} threads, faiss "
          f"{faiss.__version__}, numpy {np.__version__}")  # fmt: skip
    bandwidth = copy_bandwidth()
    print(f"copy bandwidth (read + write): {bandwidth / 1e9:.1f} GB/s")
    rows = []
    for n in sizes:
        rows += bench_size(n, args.queries, bandwidth, stores)
    print("\n" + markdown(rows))
    if args.out:
        args.out.write_text(json.dumps({"machine": cpu_model(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
