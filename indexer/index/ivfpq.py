"""The IVF-PQ index of :class:`.store.VectorStore`: construction, search params, removal.

``IndexIDMap2(IndexRefineFlat(IndexIVFPQ))``: the PQ codes pick a shortlist of ``k_factor``·k
candidates, which FAISS re-scores with exact inner products on the float vectors the refine stage
keeps (so scores are exact, and memory is d·4 bytes per vector more than the codes: more than
``flat`` in total; see docs/performance.md "Search").
Params ``nlist`` (4·sqrt(N)), ``m`` sub-quantisers (must divide the dim; default the largest
divisor <= d/8: 144 bytes per 1152-d vector; d/4 trains 2x slower for a little more
recall), ``nbits`` (8), ``nprobe`` (16), ``train_size`` (64·nlist, at least 20k; a fixed-seed
sample), ``k_factor`` (8). ``k_factor=0`` builds a bare ``IndexIVFPQ`` with native ids (no
re-ranking, approximate scores; what indexes written before the refine stage hold): PQ codes
alone reached recall@10 of only 0.60-0.65 in ``bench/search.py``. The refine stage keeps rows
by position, so its ids live in the ID map and :func:`remove_refined` compacts both stages and
renumbers the inverted lists itself (``IndexRefine`` has no ``remove_ids``).
"""

from __future__ import annotations

import math
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

Ids = npt.NDArray[np.int64]
Vectors = npt.NDArray[np.float32]


def fill_params(dim: int, n: int, params: dict[str, Any]) -> dict[str, Any]:
    """Defaults that train on small collections too (PQ needs 2**nbits points, IVF ~39·nlist)."""
    m = int(params.get("m") or max(c for c in range(1, max(dim // 8, 1) + 1) if dim % c == 0))
    if dim % m:
        raise ValueError(f"ivfpq: m={m} must divide the vector dim {dim}")
    nbits = int(params.get("nbits", 8))
    # k-means wants ~39 training points per centroid: fewer bits on small collections
    nbits = max(1, min(nbits, int(math.log2(max(n / 39, 2)))))
    nlist = int(params.get("nlist") or max(1, int(4 * math.sqrt(max(n, 1)))))
    nlist = max(1, min(nlist, n // 39 or 1))
    nprobe = min(int(params.get("nprobe", 16)), nlist)
    # k-means needs ~39-256 points per centroid; more only costs training time
    train_size = int(params.get("train_size") or min(n, max(64 * nlist, 2**nbits * 64, 20_000)))
    k_factor = int(params.get("k_factor", 8))
    if k_factor < 0:
        raise ValueError(f"ivfpq: k_factor={k_factor} must be >= 1, or 0 for no re-ranking")
    return {
        "nlist": nlist,
        "m": m,
        "nbits": nbits,
        "nprobe": nprobe,
        "train_size": train_size,
        "k_factor": k_factor,
    }


def train_index(x: Vectors, params: dict[str, Any]) -> faiss.Index:
    """An empty IVF-PQ trained on ``x`` (``params`` from :func:`fill_params`), refine-wrapped."""
    dim = x.shape[1]
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFPQ(
        quantizer,
        dim,
        params["nlist"],
        params["m"],
        params["nbits"],
        faiss.METRIC_INNER_PRODUCT,
    )
    if len(x) == 0:
        raise ValueError("ivfpq needs training vectors; build it from a non-empty set")
    train = x
    if len(x) > params["train_size"]:  # a fixed-seed sample keeps builds reproducible
        pick = np.random.default_rng(0).choice(len(x), params["train_size"], replace=False)
        train = x[np.sort(pick)]
    index.train(train)
    index.nprobe = params["nprobe"]
    if params["k_factor"]:  # wrapped after training: is_trained is copied at construction
        refine = faiss.IndexRefineFlat(index)
        refine.k_factor = params["k_factor"]
        index = faiss.IndexIDMap2(refine)
    return index


def stages(index: faiss.Index) -> tuple[Any, Any]:
    """The ``IndexIVFPQ`` and the ``IndexRefineFlat`` around it (None: bare IVF-PQ)."""
    if isinstance(index, faiss.IndexIDMap2):
        refine = faiss.downcast_index(index.index)
        return faiss.downcast_index(refine.base_index), refine
    return index, None


def list_ids(ivf: Any) -> Ids:
    """Every id held in a bare IVF's inverted lists, sorted."""
    invlists = ivf.invlists
    out = [
        faiss.rev_swig_ptr(invlists.get_ids(i), invlists.list_size(i)).copy()
        for i in range(invlists.nlist)
        if invlists.list_size(i)
    ]
    return np.sort(np.concatenate(out)) if out else np.zeros(0, np.int64)


def search_params(
    index: faiss.Index, params: dict[str, Any], sel: faiss.IDSelector | None, nprobe: int
) -> Any:
    """Search parameters for ``nprobe`` lists, filtered by ``sel`` (ids) when given."""
    refine = stages(index)[1]
    if refine is not None and sel is not None:
        # the IVF holds positions; IndexRefine passes only base_index_params on, so the
        # ID map's own translation of params.sel would never reach it
        sel = faiss.IDSelectorTranslated(index.id_map, sel)
    ivf = (
        faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)
        if sel is not None
        else faiss.SearchParametersIVF(nprobe=nprobe)
    )
    if refine is None:
        return ivf
    return faiss.IndexRefineSearchParameters(
        k_factor=float(params["k_factor"]), base_index_params=ivf
    )


def relabel_lists(ivf: Any, old: Ids, new: Ids) -> None:
    """Rewrite the ids stored in an in-RAM IVF's inverted lists (every held id in ``old``)."""
    order = np.argsort(old)
    old, new = old[order], new[order]
    invlists = ivf.invlists
    for i in range(invlists.nlist):
        n = invlists.list_size(i)
        if n:  # the id array of the list, written in place
            view = faiss.rev_swig_ptr(invlists.get_ids(i), n)
            pos = np.searchsorted(old, view)
            if pos.max() >= len(old) or (old[pos] != view).any():
                raise ValueError("renumber: a held id has no new id")
            view[:] = new[pos]


def remove_refined(index: faiss.Index, held: Ids, id_arr: Ids) -> int:
    """Drop positions from the IVF and the refine vectors, then close the gaps in both."""
    gone = np.isin(held, id_arr)
    if not gone.any():
        return 0
    ivf, refine = stages(index)
    positions = faiss.IDSelectorBatch(np.flatnonzero(gone).astype(np.int64))
    ivf.remove_ids(positions)
    flat = faiss.downcast_index(refine.refine_index)
    flat.remove_ids(positions)  # compacts: kept rows keep their order
    kept = np.flatnonzero(~gone).astype(np.int64)
    relabel_lists(ivf, kept, np.arange(len(kept), dtype=np.int64))
    refine.ntotal = flat.ntotal
    index.ntotal = flat.ntotal
    faiss.copy_array_to_vector(held[~gone], index.id_map)
    index.construct_rev_map()
    return int(gone.sum())
