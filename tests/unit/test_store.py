"""VectorStore: exact search equals numpy, filters inside the search still return k, add/remove,
save/load with mmap."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from indexer.index.faiss_store import VectorStore
from models.fusion import l2_normalise

N, D = 1200, 32


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    # clustered unit vectors: closer to real embeddings than isotropic noise
    centres = rng.normal(size=(20, D))
    x = l2_normalise(centres[rng.integers(0, 20, N)] + 0.3 * rng.normal(size=(N, D)))
    ids = np.arange(N, dtype=np.int64) * 7 + 3  # stable ids that are not positions
    q = l2_normalise(centres[rng.integers(0, 20, 5)] + 0.3 * rng.normal(size=(5, D)))
    return x, ids, q


def numpy_topk(x, ids, q, k, allowed=None):
    s = q @ x.T
    if allowed is not None:
        s = np.where(np.isin(ids, allowed)[None, :], s, -np.inf)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, order, 1), ids[order]


def test_flat_search_equals_numpy(data):
    x, ids, q = data
    store = VectorStore.build(x, ids)
    scores, got = store.search(q, 10)
    want_s, want_i = numpy_topk(x, ids, q, 10)
    np.testing.assert_allclose(scores, want_s, atol=1e-5)
    assert (got == want_i).all()


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivfpq"])
@pytest.mark.parametrize("n_allowed", [15, 400])
def test_filtered_search_returns_only_allowed_and_still_k(data, index_type, n_allowed):
    x, ids, q = data
    store = VectorStore.build(x, ids, index_type=index_type)
    allowed = np.random.default_rng(1).choice(ids, n_allowed, replace=False)
    scores, got = store.search(q, 10, allowed=allowed)
    assert np.isin(got, allowed).all(), "a filtered search returned a disallowed id"
    assert (got >= 0).all(), "filtered search came back with fewer than k results"
    assert all(len(set(row)) == 10 for row in got)
    if index_type == "flat":
        assert (got == numpy_topk(x, ids, q, 10, allowed)[1]).all()


def test_filter_with_fewer_matches_than_k_pads(data):
    x, ids, q = data
    store = VectorStore.build(x, ids, index_type="hnsw")
    scores, got = store.search(q[:1], 5, allowed=ids[:3])
    assert sorted(got[0, :3]) == sorted(ids[:3]) and (got[0, 3:] == -1).all()
    assert np.isneginf(scores[0, 3:]).all()


def test_approximate_indexes_find_most_exact_neighbours(data):
    x, ids, q = data
    exact = numpy_topk(x, ids, q, 10)[1]
    hnsw = VectorStore.build(x, ids, index_type="hnsw").search(q, 10)[1]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(hnsw, exact, strict=True)])
    assert recall >= 0.9, f"hnsw recall@10 {recall}"
    # PQ codes (4-bit on 1.2k points) blur the ranking inside a cluster, but an indexed vector
    # should still find itself in its top 10 (random: 10/1200)
    store = VectorStore.build(x, ids, index_type="ivfpq", params={"m": 16})
    ivfpq = store.search(x[:50], 10)[1]
    assert np.mean([i in row for i, row in zip(ids[:50], ivfpq, strict=True)]) >= 0.6  # 0.8 seen


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivfpq"])
def test_add_and_remove_by_id(data, index_type):
    x, ids, q = data
    store = VectorStore.build(x[:-1], ids[:-1], index_type=index_type)
    target = x[-1:]
    assert store.search(target, 1)[1][0, 0] != ids[-1]
    store.add(target, ids[-1:])
    assert store.ntotal == N
    assert store.search(target, 1)[1][0, 0] == ids[-1]
    with pytest.raises(ValueError, match="already present"):
        store.add(target, ids[-1:])
    assert store.remove([ids[-1], ids[0]]) == 2
    assert store.ntotal == N - 2
    top = store.search(np.vstack([target, x[:1]]), 5)[1]
    assert ids[-1] not in top and ids[0] not in top


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivfpq"])
@pytest.mark.parametrize("mmap", [False, True])
def test_save_load_round_trip(tmp_path, data, index_type, mmap):
    x, ids, q = data
    store = VectorStore.build(x, ids, index_type=index_type)
    path = tmp_path / "i.faiss"
    store.save(path)
    loaded = VectorStore.load(path, index_type=index_type, params=store.params, mmap=mmap)
    assert loaded.ntotal == N and loaded.dim == D
    a, b = store.search(q, 10), loaded.search(q, 10)
    assert (a[1] == b[1]).all()
    np.testing.assert_allclose(a[0], b[0], atol=1e-6)
    assert sorted(loaded.ids()) == sorted(ids)


def test_bad_inputs_are_refused(data):
    x, ids, _ = data
    with pytest.raises(ValueError, match="unknown index type"):
        VectorStore.build(x, ids, index_type="lsh")
    with pytest.raises(ValueError, match="unique"):
        VectorStore.build(x[:2], [1, 1])
    store = VectorStore.build(x, ids)
    with pytest.raises(ValueError, match="shape"):
        store.search(np.zeros((1, D + 1), np.float32), 3)


def test_ivfpq_refine_reranks_the_pq_shortlist_exactly(tmp_path):
    # isotropic random vectors: the hard case for PQ codes (every neighbour is nearly as far)
    rng = np.random.default_rng(0)
    x = l2_normalise(rng.normal(size=(5000, 64))).astype(np.float32)
    q = l2_normalise(rng.normal(size=(100, 64))).astype(np.float32)
    ids = np.arange(5000, dtype=np.int64) * 3 + 1
    exact = numpy_topk(x, ids, q, 10)[1]

    def recall(store, exact=exact):
        got = store.search(q, 10)[1]
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, exact, strict=True)])

    # every list probed, so the codes (not the probing) decide what the shortlist holds
    store = VectorStore.build(
        x, ids, index_type="ivfpq", params={"m": 16, "nlist": 32, "nprobe": 32, "k_factor": 16}
    )
    assert store.params["k_factor"] == 16
    refined = recall(store)
    store.params["k_factor"] = 1  # the PQ ranking alone (0.49 seen)
    assert recall(store) < 0.7 and refined >= 0.95, f"recall@10 with refine {refined}"
    store.params["k_factor"] = 16
    # scores are exact inner products, and stay tied to the right ids after remove/add and a
    # save/load (the refine vectors are kept by position, the ids in the ID map)
    assert store.remove(ids[:100:7]) == len(ids[:100:7])
    kept = np.ones(len(ids), bool)
    kept[:100:7] = False
    assert recall(store, numpy_topk(x[kept], ids[kept], q, 10)[1]) >= 0.95
    store.add(x[:100:7], ids[:100:7] + 1)
    store.save(tmp_path / "i.faiss")
    loaded = VectorStore.load(tmp_path / "i.faiss", index_type="ivfpq", mmap=True)
    assert loaded.params["k_factor"] == 16
    held = dict(
        zip(
            np.r_[np.delete(ids, np.s_[:100:7]), ids[:100:7] + 1],
            np.r_[np.delete(x, np.s_[:100:7], axis=0), x[:100:7]],
            strict=True,
        )
    )
    allowed = np.r_[ids[200:1000:3], ids[:100:7] + 1]
    for s in (store, loaded):
        scores, got = s.search(q[:20], 10, allowed=allowed)
        assert np.isin(got, allowed).all() and (got >= 0).all()
        want = np.array([[held[j] @ qq for j in row] for row, qq in zip(got, q[:20], strict=True)])
        np.testing.assert_allclose(scores, want, atol=1e-5)


def test_ivfpq_without_refine_is_a_bare_ivfpq(tmp_path, data):
    x, ids, q = data
    store = VectorStore.build(x[:-1], ids[:-1], index_type="ivfpq", params={"k_factor": 0})
    assert isinstance(store.index, faiss.IndexIVFPQ)
    store.add(x[-1:], ids[-1:])
    assert store.remove(ids[:2]) == 2
    store.renumber(ids[2:], ids[2:] + 1)
    assert sorted(store.ids()) == sorted(ids[2:] + 1)
    allowed = ids[2:400] + 1
    got = store.search(q, 10, allowed=allowed)[1]
    assert np.isin(got, allowed).all() and (got >= 0).all()
    store.save(tmp_path / "i.faiss")
    loaded = VectorStore.load(tmp_path / "i.faiss", index_type="ivfpq")
    assert loaded.params["k_factor"] == 0
    assert (loaded.search(q, 10)[1] == store.search(q, 10)[1]).all()
