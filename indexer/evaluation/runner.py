"""Run an evaluation: queries through the Retriever the service uses, baselines beside.

A query carries its ground-truth labels only for scoring: the retriever sees the image (or its
precomputed vector) and, in ``hybrid`` mode, an explicitly declared text. Every configuration
(mode x fusion weight) and both baselines rank the same candidate pool per query (the catalogue
minus the query's own group in leave-one-out), and are scored by the same functions.

Queries with an image are embedded by :func:`models.embedding.embed_image` (the service's path);
the baselines live in :mod:`indexer.evaluation.baselines`, the result types and the scoring in
:mod:`indexer.evaluation.results`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from indexer.evaluation.baselines import majority_baseline, random_baseline
from indexer.evaluation.estimate_quality import (
    estimates_section,
    query_evidence,
    query_heads,
    query_probas,
    truth_matrix,
)
from indexer.evaluation.metrics import LabelSet, label_set, latency_summary, tie_break
from indexer.evaluation.novelty_check import held_out_labels
from indexer.evaluation.queries import ORACLE, ORACLE_LABEL, EvaluationError, Query
from indexer.evaluation.results import Evaluation, Neighbour, Scoring, score_rankings
from indexer.evaluation.set_coverage import coverage_section
from indexer.evaluation.uncertainty import DEFAULT_REPEATS, evaluation_intervals
from indexer.query import QUERY_MODES, RetrievalResult
from models.description import describe
from models.embedding import embed_image
from models.taxonomy import Taxonomy

if TYPE_CHECKING:
    from indexer.retrieval.retriever import Retriever

logger = logging.getLogger(__name__)

DEFAULT_KS = (1, 3, 5, 10)


@dataclass(frozen=True)
class RunConfig:
    mode: str
    alpha: float | None = None  # None: the manifest's fusion weight (ignored by mode 'image')

    @property
    def name(self) -> str:
        return self.mode if self.alpha is None else f"{self.mode} a={self.alpha:g}"


def configs_for(modes: Sequence[str], alphas: Sequence[float] | None) -> list[RunConfig]:
    """``image`` / ``probe`` once; ``hybrid`` / ``rerank`` once per fusion weight (manifest's if
    none)."""
    out: list[RunConfig] = []
    for mode in modes:
        if mode not in QUERY_MODES:
            raise EvaluationError(f"unknown mode {mode!r}; expected {', '.join(QUERY_MODES)}")
        if mode in ("image", "probe"):
            out.append(RunConfig(mode))
        else:
            weights: Sequence[float | None] = alphas or [None]
            out.extend(RunConfig(mode, a) for a in weights)
    return list(dict.fromkeys(out))


# -- running --------------------------------------------------------------------------------------


def evaluate(
    retriever: Retriever,
    queries: Sequence[Query],
    *,
    modes: Sequence[str] = ("image",),
    ks: Sequence[int] = DEFAULT_KS,
    alphas: Sequence[float] | None = None,
    text_source: str | None = None,
    leave_one_out: bool = False,
    random_repeats: int = 20,
    seed: int = 0,
    vote_k: int = 5,
    bootstrap: int = DEFAULT_REPEATS,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Score every configuration and both baselines on the same queries and candidate pools."""
    if not queries:
        raise EvaluationError("no queries to evaluate")
    ks = tuple(sorted({int(k) for k in ks}))
    if not ks or ks[0] < 1:
        raise EvaluationError(f"k values must be >= 1, got {ks}")
    kmax = ks[-1]
    vote_k = vote_k if vote_k in ks else ks[min(len(ks) - 1, len(ks) // 2)]
    configs = configs_for(modes, alphas)
    if any(c.mode == "hybrid" for c in configs):
        if not text_source:
            raise EvaluationError("mode 'hybrid' needs an explicit --text-source")
        missing = sum(1 for q in queries if not (q.text and q.text.strip()))
        if missing:
            raise EvaluationError(
                f"{missing} of {len(queries)} queries have no text in {text_source!r}"
            )
    taxonomy: Taxonomy = retriever.taxonomy
    nd = taxonomy.no_damage_id
    items = retriever.artifacts.items
    item_sets = [label_set(it.labels, no_damage=nd) for it in items]
    truths = [label_set(q.labels, no_damage=nd) for q in queries]
    all_rows = np.arange(len(items), dtype=np.int64)
    all_counts = Counter(item_sets)
    pools = [_pool_rows(items, q) if _excludes(q) else all_rows for q in queries]
    pool_counts = [
        Counter(item_sets[r] for r in rows) if _excludes(q) else all_counts
        for q, rows in zip(queries, pools, strict=True)
    ]
    order = taxonomy.order

    warnings = _leak_warnings(queries, items, leave_one_out)
    if text_source == ORACLE:
        warnings.append(f"text source is {ORACLE_LABEL}")
    elif text_source:
        leaking = sum(
            1 for q in queries if q.text and q.text == describe(q.labels, q.zone, taxonomy)
        )
        if leaking:
            warnings.append(
                f"{leaking} of {len(queries)} query texts in {text_source!r} equal the "
                "ground-truth template description: that text source leaks the labels"
            )
    for w in warnings:
        logger.warning("%s", w)

    rankings: dict[RunConfig, list[list[Neighbour]]] = {c: [] for c in configs}
    pseudo: dict[RunConfig, list[str | None]] = {c: [] for c in configs}
    timings: dict[RunConfig, dict[str, list[float]]] = {c: {} for c in configs}
    decode_times: list[float] = []
    vectors, encodings = [], []
    for q in queries:
        vector, encode_stages = q.vector, dict[str, float]()
        if vector is None:
            # Embed once per query, then search every configuration: the service's image ->
            # vector path, without re-encoding the image per sweep point.
            vector, encode_stages = _embed(q, retriever)
            decode_times.append(encode_stages.pop("decode"))
        vectors.append(vector)
        encodings.append(encode_stages)
    # leave-one-out: cross-fitted by group, never the stored head (it saw every query)
    heads = query_heads(retriever.artifacts, queries, leave_one_out)
    for n, q in enumerate(queries):
        vector, encode_stages = vectors[n], encodings[n]
        for c in configs:
            text = q.text if c.mode == "hybrid" else None
            t0 = time.perf_counter()
            result = retriever.search(
                vector,
                k=kmax,
                mode=c.mode,
                text=text,
                alpha=c.alpha,
                exclude_ids=q.exclude_ids,
                exclude_groups=q.exclude_groups,
                label_head=None if heads is None else heads[n],
            )
            result = replace(result, timings={**encode_stages, **result.timings})
            total = time.perf_counter() - t0 + sum(encode_stages.values())
            rankings[c].append(_neighbours(retriever, result, nd))
            pseudo[c].append(result.pseudo_text)
            stages = timings[c]
            for stage, seconds in result.timings.items():
                stages.setdefault(stage, []).append(seconds)
            stages.setdefault("total", []).append(total)
        if progress is not None:
            progress(n + 1, len(queries))

    labels = _label_order(truths, item_sets, order)
    scoring = Scoring(queries, truths, pool_counts, ks, vote_k, labels, order)
    runs = []
    for c in configs:
        samples = dict(timings[c])
        if decode_times:
            samples = {"decode": decode_times, **samples}
        run = score_rankings(c.name, rankings[c], scoring)
        run.latency = latency_summary(samples)
        run.mode, run.alpha = c.mode, c.alpha
        for outcome, text in zip(run.outcomes, pseudo[c], strict=True):
            outcome.pseudo_text = text
        runs.append(run)

    baselines = {
        "majority": majority_baseline(scoring, items, item_sets, pools),
        "random": random_baseline(
            scoring, items, item_sets, pools, repeats=random_repeats, seed=seed
        ),
    }
    setting = {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "protocol": "leave-one-out (same group excluded)" if leave_one_out else "held-out queries",
        "queries": len(queries),
        "catalogue_items": len(items),
        "ks": list(ks),
        "vote_k": vote_k,
        "modes": list(dict.fromkeys(c.mode for c in configs)),
        "alphas": [
            c.alpha if c.alpha is not None else retriever.artifacts.alpha
            for c in configs
            if c.mode != "image"
        ],
        "manifest_alpha": retriever.artifacts.alpha,
        "rerank_candidates": retriever.rerank_candidates,
        "text_source": (ORACLE_LABEL if text_source == ORACLE else text_source),
        "random_repeats": random_repeats,
        "seed": seed,
        "no_damage_convention": f"a query or item without labels has the label set {{{nd}}}",
        "taxonomy": f"{taxonomy.name} {taxonomy.version}",
    }
    uncertainty = (
        evaluation_intervals(
            runs, baselines["majority"], truths, queries, ks, repeats=bootstrap, seed=seed
        )
        if bootstrap > 0
        else None
    )
    head = retriever.artifacts.label_head
    estimates = None
    if head is not None and heads is not None:
        probas = query_probas(heads, vectors)
        source = "cross-fitted by group" if leave_one_out else "stored head (catalogue only)"
        y = truth_matrix(retriever.artifacts, queries)
        evidence = query_evidence(heads, vectors)
        estimates = estimates_section(probas, y, head.labels, head.prior, source, evidence)
        estimates["label_sets"] = coverage_section(
            heads, vectors, y, [q.group or q.id for q in queries], seed=seed
        )
    novelty = None
    if leave_one_out and head is not None:
        novelty = held_out_labels(
            np.stack([np.asarray(v, np.float64).reshape(-1) for v in vectors]),
            truth_matrix(retriever.artifacts, queries),
            head.labels,
            [q.group or q.id for q in queries],
        )
    return Evaluation(
        setting, runs, baselines, labels, vote_k, ks, warnings, estimates, uncertainty, novelty
    )


def _embed(q: Query, retriever: Retriever) -> tuple[Any, dict[str, float]]:
    if q.image_path is None:
        raise EvaluationError(f"query {q.id!r} has neither an image nor a vector")
    if retriever.image_encoder is None:
        raise EvaluationError("image queries need an image encoder (none is loaded)")
    return embed_image(q.image_path, retriever.image_encoder)


def _neighbours(retriever: Retriever, result: RetrievalResult, no_damage: str) -> list[Neighbour]:
    hits = result.hits
    # probe ranks by its own score but reports the cosine: keep the retriever's order
    ordered = (
        list(range(len(hits)))
        if result.mode == "probe"
        else tie_break([h.id for h in hits], [h.score for h in hits])
    )
    out = []
    for i in ordered:
        h = hits[i]
        out.append(
            Neighbour(
                id=h.id,
                score=float(h.score),
                labels=tuple(sorted(label_set([lc.id for lc in h.labels], no_damage=no_damage))),
                image=retriever.image_path(h.id),
            )
        )
    return out


def _excludes(q: Query) -> bool:
    return bool(q.exclude_groups or q.exclude_ids)


def _pool_rows(items: Sequence[Any], q: Query) -> npt.NDArray[np.int64]:
    groups, ids = set(q.exclude_groups), set(q.exclude_ids)
    return np.array(
        [it.row for it in items if it.id not in ids and not (groups and it.group in groups)],
        dtype=np.int64,
    )


def _leak_warnings(queries: Sequence[Query], items: Sequence[Any], loo: bool) -> list[str]:
    if loo:
        return []
    ids = {it.id for it in items}
    groups = {it.group for it in items if it.group}
    same_id = sum(1 for q in queries if q.id in ids)
    same_group = sum(1 for q in queries if q.group and q.group in groups)
    out = []
    if same_id:
        out.append(
            f"{same_id} queries are themselves in the index (self-retrieval inflates scores)"
        )
    if same_group:
        out.append(f"{same_group} queries share a group with indexed items (split leakage)")
    return out


def _label_order(
    truths: Sequence[LabelSet], item_sets: Sequence[LabelSet], order: Callable[[str], int]
) -> list[str]:
    seen = set().union(*truths, *item_sets) if truths or item_sets else set()
    return sorted(seen, key=lambda label: (order(label), label))
