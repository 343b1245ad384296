"""Vector search benchmark: flat vs HNSW vs IVF-PQ through indexer.index.faiss_store.VectorStore.

For each collection size N (10k, 100k, 1M; ``--quick``: 10k and 100k) and d = 384 + 768 = 1152
(fused ViT-B image + MiniLM text vectors, alpha 0.6) it measures, in the same run
(``--store milvus-lite|both``: also Milvus Lite collections, :func:`bench_milvus`):

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
from the same clusters. Run: ``python -m bench.search --quick [--out results.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

from bench.machine import cpu_model
from indexer.index.faiss_store import VectorStore

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


def workload(n: int, n_queries: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` vectors, ``n_queries`` fresh queries, and the exact top-K ids of each query."""
    data = Data(n)
    t = time.perf_counter()
    x = data.sample(n, seed=1)
    print(
        f"\nN={n:,}: generated {x.nbytes / 1e9:.2f} GB in {time.perf_counter() - t:.1f} s",
        flush=True,
    )
    q = data.sample(n_queries, seed=2)
    return x, q, numpy_topk(x, q, K)


def bench_size(n: int, n_queries: int, bandwidth: float, stores=("faiss",)) -> list[dict]:
    x, q, exact = workload(n, n_queries)
    ids = np.arange(n, dtype=np.int64)
    rows = []
    bound = x.nbytes / bandwidth
    np_single = single_latency(lambda qq: numpy_topk(x, qq, K), q[:30])
    np_batch = timed(lambda: numpy_topk(x, q, K), 2) / n_queries
    rows.append(
        {
            "N": n,
            "index": "bandwidth bound",
            "params": f"{bandwidth / 1e9:.1f} GB/s copy",
            "single_ms": bound * 1e3,
        }
    )
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
        ("hnsw", {"M": 32, "efConstruction": 200}, [{"efSearch": ef} for ef in (32, 64, 128, 256)]),
        # k_factor=1: the PQ ranking alone (re-scoring only its own top k cannot change the set)
        (
            "ivfpq",
            {"m": (DI + DT) // 8, "nbits": 8, "k_factor": 8},
            [
                {"nprobe": 8, "k_factor": 1},
                {"nprobe": 8, "k_factor": 8},
                {"nprobe": 32, "k_factor": 8},
                {"nprobe": 32, "k_factor": 16},
                {"nprobe": 128, "k_factor": 8},
            ],
        ),
    ]
    if "milvus-lite" in stores:  # beside FAISS, on the same vectors and queries
        rows += bench_milvus(x, q, exact, K)
    for index_type, build_params, search_params in configs:
        if "faiss" not in stores:
            break
        t = time.perf_counter()
        store = VectorStore.build(x, ids, index_type=index_type, params=build_params)
        build_s = time.perf_counter() - t
        size = len(faiss.serialize_index(store.index)) / n
        if index_type == "ivfpq":  # the whole index: codes + the refine stage's float vectors
            codes = len(faiss.serialize_index(faiss.downcast_index(store.index.index).base_index))
            print(
                f"  ivfpq bytes/vector {size:.0f}: IVF-PQ codes and lists {codes / n:.0f}, "
                f"refine vectors and id map {size - codes / n:.0f}",
                flush=True,
            )
        for sp in search_params:
            store.params.update(sp)
            if index_type == "hnsw":
                faiss.downcast_index(store.index.index).hnsw.efSearch = sp["efSearch"]
            single = single_latency(lambda qq, s=store: s.search(qq, K), q)
            batched = timed(lambda s=store: s.search(q, K), 2) / n_queries
            got = store.search(q, K)[1]
            row = {
                "N": n,
                "index": index_type,
                "params": ", ".join(f"{k}={v}" for k, v in store.params.items()),
                "build_s": build_s,
                "bytes_per_vector": size,
                "single_ms": single * 1e3,
                "batched_ms": batched * 1e3,
                "recall": recall(got, exact),
            }
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


MILVUS_MAX_N = 100_000
MILVUS_CONFIGS = [
    ("flat", {}, [{}]),
    ("hnsw", {"M": 32, "efConstruction": 200}, [{"ef": 64}, {"ef": 128}]),
    ("ivfpq", {"nlist": 256}, [{"nprobe": 8}, {"nprobe": 32}]),  # Milvus IVF_FLAT
]


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bench_milvus(x: np.ndarray, q: np.ndarray, exact: np.ndarray, k: int) -> list:
    """Rows like :func:`bench_size`'s for each Milvus Lite index type, in one Lite file.

    Bytes/vector = the Lite data directory on disk / N (Milvus keeps its own copy; the artifact
    directory still holds the float vectors for rerank). Latency is client-observed (gRPC to the
    local Lite server, in-process client). Sizes are bounded (``MILVUS_MAX_N``): Lite is for tests
    and laptops.
    """
    from indexer.index.catalogue import CatalogueItem
    from indexer.index.milvus_connection import connect
    from indexer.index.milvus_store import MilvusStore

    n = len(x)
    if n > MILVUS_MAX_N:
        print(f"  milvus-lite skipped at N={n:,} (bounded to {MILVUS_MAX_N:,})", flush=True)
        return []
    rows = []
    items = [CatalogueItem(i, str(i), "", {}, "", "", "", "") for i in range(n)]
    ids = np.arange(n, dtype=np.int64)
    with tempfile.TemporaryDirectory(prefix="visrag-milvus-bench-") as tmp:
        client = connect(str(Path(tmp) / "bench.db"))
        for index_type, build_params, search_params in MILVUS_CONFIGS:
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
            size = disk_bytes(Path(tmp)) / n
            for sp in search_params:
                store.params.update(sp)
                single_s = single_latency(lambda qq, s=store: s.search(qq, k), q)
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


def bench_large(n: int, n_queries: int, bandwidth: float, sample: int) -> list[dict]:
    """Rows for N too large to build every index of :func:`bench_size` in minutes (1M).

    Measured on all N: exact search (numpy; the faiss flat index would be a second 4.6 GB copy),
    flat with float16 storage, IVF with float16 storage. HNSW is built on the first ``sample``
    vectors (recall against exact search within that sample) and its build time and latency are
    extrapolated to N: build × (N/S)·ln N/ln S, latency × ln N/ln S (graph search visits
    O(log N) nodes). The extrapolated values are in their own columns, never in the measured ones.
    """
    x, q, exact = workload(n, n_queries)
    bound = x.nbytes / bandwidth
    rows: list[dict] = [
        {
            "N": n,
            "index": "bandwidth bound",
            "params": f"{bandwidth / 1e9:.1f} GB/s copy",
            "single_ms": bound * 1e3,
        }
    ]
    np_single = single_latency(lambda qq: numpy_topk(x, qq, K), q[:10])
    np_batch = timed(lambda: numpy_topk(x, q, K)) / n_queries
    rows.append(
        {
            "N": n,
            "index": "numpy matmul (exact)",
            "params": "float32",
            "bytes_per_vector": 4 * x.shape[1],
            "single_ms": np_single * 1e3,
            "batched_ms": np_batch * 1e3,
            "recall": 1.0,
        }
    )
    print(
        f"  numpy exact: single {np_single * 1e3:.1f} ms, batched {np_batch * 1e3:.1f} ms/q",
        flush=True,
    )
    d = x.shape[1]
    ip = faiss.METRIC_INNER_PRODUCT
    fp16 = faiss.ScalarQuantizer.QT_fp16

    def measure(name, params, index, build_s, nq, queries, truth, per_vector_n, search_params):
        size = len(faiss.serialize_index(index)) / per_vector_n
        for label, apply in search_params:
            apply(index)
            single = single_latency(lambda qq: index.search(qq, K), queries[:nq])
            batched = timed(lambda: index.search(queries, K)) / len(queries)
            got = index.search(queries, K)[1]
            row = {
                "N": n,
                "index": name,
                "params": ", ".join(p for p in (params, label) if p),
                "build_s": build_s,
                "bytes_per_vector": size,
                "single_ms": single * 1e3,
                "batched_ms": batched * 1e3,
                "recall": recall(got, truth),
            }
            rows.append(row)
            print(
                f"  {name} {row['params']}: build {build_s:.1f} s, {size:.0f} B/vec, single "
                f"{single * 1e3:.3f} ms, batched {batched * 1e3:.3f} ms/q, recall@10 "
                f"{row['recall']:.3f}",
                flush=True,
            )
        return rows[-len(search_params) :]

    t = time.perf_counter()
    flat16 = faiss.IndexScalarQuantizer(d, fp16, ip)
    flat16.add(x)
    measure("flat fp16", "", flat16, time.perf_counter() - t, 10, q, exact, n, [("", id)])
    del flat16

    nlist = 1024
    t = time.perf_counter()
    ivf = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(d), d, nlist, fp16, ip)
    ivf.train(x[np.random.default_rng(0).choice(n, 64 * nlist, replace=False)])
    ivf.add(x)
    probes = [(f"nprobe={p}", lambda i, p=p: setattr(i, "nprobe", p)) for p in (8, 16, 32, 64)]
    measure(
        "ivf fp16",
        f"nlist={nlist}, train {64 * nlist}",
        ivf,
        time.perf_counter() - t,
        30,
        q,
        exact,
        n,
        probes,
    )
    del ivf

    xs = x[:sample]
    truth = numpy_topk(xs, q, K)
    scale = np.log(n) / np.log(sample)
    efs = [(f"efSearch={e}", lambda i, e=e: setattr(i.hnsw, "efSearch", e)) for e in (32, 64, 128)]
    for name, m, efc, make in (
        ("hnsw", 16, 64, lambda m: faiss.IndexHNSWFlat(d, m, ip)),
        ("hnsw fp16", 16, 64, lambda m: faiss.IndexHNSWSQ(d, fp16, m, ip)),
    ):
        t = time.perf_counter()
        index = make(m)
        index.hnsw.efConstruction = efc
        index.add(xs)
        build_s = time.perf_counter() - t
        label = f"M={m}, efConstruction={efc}, built on {sample:,}"
        for row in measure(name, label, index, build_s, 30, q, truth, sample, efs):
            row["extrapolated_build_s"] = build_s * n / sample * scale
            row["extrapolated_single_ms"] = row["single_ms"] * scale
        del index
    print(
        f"  HNSW extrapolation to N={n:,} from {sample:,}: build x{n / sample * scale:.1f}, "
        f"latency x{scale:.2f}",
        flush=True,
    )
    return rows


def markdown(rows: list[dict]) -> str:
    head = (
        "| N | index | params | build s | bytes/vector | single query ms | batched ms/query "
        "| recall@10 | speed-up vs flat (single) |"
    )
    lines = [head, "|" + "---|" * 9]

    def f(v, fmt):
        return "" if v is None else format(v, fmt)

    for r in rows:
        lines.append(
            f"| {r['N']:,} | {r['index']} | {r['params']} | {f(r.get('build_s'), '.1f')} "
            f"| {f(r.get('bytes_per_vector'), '.0f')} | {f(r.get('single_ms'), '.3f')} "
            f"| {f(r.get('batched_ms'), '.3f')} | {f(r.get('recall'), '.3f')} "
            f"| {f(r.get('speedup_vs_flat'), '.1f')} |"
            + (
                f" extrapolated to N: build {r['extrapolated_build_s']:.0f} s, single "
                f"{r['extrapolated_single_ms']:.3f} ms"
                if "extrapolated_build_s" in r
                else ""
            )
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 10k and 100k only")
    parser.add_argument("--sizes", help="comma list of N (overrides --quick)")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument(
        "--large-from",
        type=int,
        default=500_000,
        help="N from which the bounded large-N rows run instead of every index (default 500k)",
    )
    parser.add_argument("--sample", type=int, default=100_000, help="HNSW build sample for large N")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    parser.add_argument(
        "--store",
        choices=("faiss", "milvus-lite", "both"),
        default="faiss",
        help="FAISS indexes, Milvus Lite collections (N <= 100k), or both",
    )
    args = parser.parse_args()
    stores = ("faiss", "milvus-lite") if args.store == "both" else (args.store,)
    sizes = (
        [int(s) for s in args.sizes.split(",")]
        if args.sizes
        else [10_000, 100_000]
        if args.quick
        else [10_000, 100_000, 1_000_000]
    )
    print(
        f"machine: {cpu_model()}, {faiss.omp_get_max_threads()} threads, faiss "
        f"{faiss.__version__}, numpy {np.__version__}"
    )
    bandwidth = copy_bandwidth()
    print(
        f"copy bandwidth (read + write): {bandwidth / 1e9:.1f} GB/s; load average {os.getloadavg()}"
    )
    rows = []
    for n in sizes:
        if n >= args.large_from:
            rows += bench_large(n, args.queries, bandwidth, args.sample)
        else:
            rows += bench_size(n, args.queries, bandwidth, stores)
    print("\n" + markdown(rows))
    if args.out:
        result = {
            "machine": cpu_model(),
            "command": " ".join(sys.argv),
            "rows": rows,
            "load_average": os.getloadavg(),
        }
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
