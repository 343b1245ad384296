"""The run: queries -> contexts -> one cached chat call per (query, arm) -> scores -> report."""

from __future__ import annotations

import base64
import logging
import mimetypes
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.vlm_eval.answers import parse_answer, vocabulary
from app.vlm_eval.cache import AnswerCache
from app.vlm_eval.chat import ChatEndpoint, check_destination
from app.vlm_eval.contexts import QueryContext, in_process_contexts, service_contexts
from app.vlm_eval.prompts import ARMS, arm_messages, instruction, prompt_hash, request_body
from app.vlm_eval.scores import ArmAnswers, arm_intervals, arm_scores
from indexer.evaluation.metrics import LabelSet, label_set
from indexer.evaluation.queries import (
    EvaluationError,
    Query,
    leave_one_out_queries,
    load_queries,
    open_retriever,
)
from models.taxonomy import load_taxonomy

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    model: str
    api_key: str | None = None
    timeout: float = 120.0
    retries: int = 4
    backoff: float = 1.0
    json_mode: bool = True
    max_tokens: int = 200
    concurrency: int = 4
    allow_remote_images: bool = False


@dataclass(frozen=True)
class Retrieval:
    artifacts: Path | None = None
    queries: Path | None = None
    leave_one_out: bool = False
    service: str | None = None
    service_key: str | None = None
    k: int = 5
    max_examples: int = 5
    taxonomy: Path | None = None
    device: str = "auto"


def _data_url(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "image/jpeg"
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def shuffled_order(n: int, seed: int) -> list[int]:
    """For each query, another query whose context it gets (a seeded cycle: never its own)."""
    if n < 2:
        return list(range(n))
    perm = np.random.default_rng(seed).permutation(n)
    out = [0] * n
    for i in range(n):
        out[int(perm[i])] = int(perm[(i + 1) % n])
    return out


def _queries_and_contexts(
    r: Retrieval, arms: Sequence[str], limit: int | None, echo: Callable[[str], None]
) -> tuple[list[Query], list[QueryContext], list[Path], Any]:
    tax = load_taxonomy(r.taxonomy)
    images = "context+images" in arms
    if r.service:
        if r.queries is None:
            raise EvaluationError("--service needs --queries (held-out queries)")
        queries = load_queries(r.queries, tax)[:limit]
        echo(f"retrieving the contexts of {len(queries)} queries from {r.service}")
        contexts = service_contexts(
            r.service,
            queries,
            k=r.k,
            max_examples=r.max_examples,
            images=images,
            api_key=r.service_key,
        )
        return queries, contexts, [q.image_path for q in queries if q.image_path], tax
    if r.artifacts is None or (r.queries is None) == (not r.leave_one_out):
        raise EvaluationError("give --artifacts and exactly one of --queries or --leave-one-out")
    retriever = open_retriever(
        r.artifacts, taxonomy=tax, image=not r.leave_one_out, text=False, device=r.device
    )
    if r.leave_one_out:
        queries = leave_one_out_queries(retriever.artifacts)[:limit]
    else:
        assert r.queries is not None
        queries = load_queries(r.queries, tax)[:limit]
    echo(f"retrieving the contexts of {len(queries)} queries in-process")
    contexts = in_process_contexts(
        retriever,
        queries,
        k=r.k,
        max_examples=r.max_examples,
        images=images,
        leave_one_out=r.leave_one_out,
    )
    photos = [q.image_path or retriever.image_path(q.id) for q in queries]
    if any(p is None for p in photos):
        raise EvaluationError("some queries have no image file to show the VLM")
    return queries, contexts, photos, tax


def run_vlm_evaluation(
    retrieval: Retrieval,
    endpoint: Endpoint,
    *,
    arms: Sequence[str] = ARMS,
    cache_dir: Path,
    limit: int | None = None,
    seed: int = 0,
    bootstrap: int = 1000,
    echo: Callable[[str], None] = print,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Ask the endpoint every (query, arm) not yet cached and score the arms (metrics.json's
    content); ``requests`` says how many HTTP requests this run sent."""
    unknown = [a for a in arms if a not in ARMS]
    if unknown or "none" not in arms:
        raise EvaluationError(f"arms must include 'none' and be among {', '.join(ARMS)}")
    check_destination(endpoint.base_url, allow_remote=endpoint.allow_remote_images)
    queries, contexts, photos, tax = _queries_and_contexts(retrieval, arms, limit, echo)
    if not queries:
        raise EvaluationError("no queries")
    system = instruction(tax)
    other = shuffled_order(len(queries), seed)
    jobs: list[tuple[str, int, list[dict[str, Any]]]] = []
    for i, photo in enumerate(photos):
        url = _data_url(Path(photo))
        for arm in arms:
            if arm == "none":
                messages = arm_messages(system, url)
            elif arm == "context":
                messages = arm_messages(system, url, context=contexts[i].text)
            elif arm == "shuffled":
                messages = arm_messages(system, url, context=contexts[other[i]].text)
            else:
                messages = arm_messages(system, url, parts=contexts[i].parts)
            jobs.append((arm, i, messages))

    cache = AnswerCache(cache_dir)
    chat = ChatEndpoint(
        endpoint.base_url,
        api_key=endpoint.api_key,
        timeout=endpoint.timeout,
        retries=endpoint.retries,
        backoff=endpoint.backoff,
        json_mode=endpoint.json_mode,
    )
    entries: dict[tuple[str, int], dict[str, Any]] = {}
    done = 0

    def ask(job: tuple[str, int, list[dict[str, Any]]]) -> None:
        nonlocal done
        arm, i, messages = job
        key = (endpoint.model, arm, queries[i].id, prompt_hash(messages))
        entry = cache.get(*key)
        if entry is None:
            body = request_body(
                endpoint.model, messages, json_mode=chat.json_mode, max_tokens=endpoint.max_tokens
            )
            reply = chat.complete(body)
            entry = {
                "text": reply.text,
                "usage": reply.usage,
                "seconds": reply.seconds,
                "attempts": reply.attempts,
                "error": reply.error,
                "problems": reply.problems,
            }
            if reply.text is not None:  # failures are asked again by the next run
                cache.put(*key, entry)
        entries[(arm, i)] = entry
        done += 1
        if progress is not None:
            progress(done, len(jobs))

    try:
        with ThreadPoolExecutor(max_workers=max(1, endpoint.concurrency)) as pool:
            list(pool.map(ask, jobs))
    finally:
        chat.close()

    nd = tax.no_damage_id
    truths = [label_set(q.labels, no_damage=nd) for q in queries]
    words = vocabulary(tax)
    predictions: dict[str, list[LabelSet]] = {}
    scores: dict[str, Any] = {}
    for arm in arms:
        preds: list[LabelSet] = []
        unparseable = failed = retried = 0
        tokens: Counter[str] = Counter()
        seconds = []
        for i in range(len(queries)):
            entry = entries[(arm, i)]
            retried += bool(entry["problems"])
            tokens.update(entry["usage"])
            if entry["text"] is None:
                failed += 1
                preds.append(frozenset())
                continue
            seconds.append(entry["seconds"])
            answer = parse_answer(entry["text"], words)
            unparseable += answer is None
            preds.append(label_set(sorted(answer.labels), no_damage=nd) if answer else frozenset())
        predictions[arm] = preds
        answers = ArmAnswers(tuple(preds), unparseable, failed, retried, tokens, tuple(seconds))
        scores[arm] = arm_scores(truths, answers)
    comparisons = [(a, "none") for a in arms if a != "none"]
    comparisons += [(a, "shuffled") for a in arms if a.startswith("context") and "shuffled" in arms]
    intervals = arm_intervals(
        truths,
        [q.group or q.id for q in queries],
        predictions,
        comparisons,
        repeats=bootstrap,
        seed=seed,
    )
    return {
        "setting": {
            "model": endpoint.model,
            "endpoint": endpoint.base_url,
            "arms": list(arms),
            "queries": len(queries),
            "retrieval": retrieval.service or "in-process",
            "protocol": "leave-one-out" if retrieval.leave_one_out else "held-out queries",
            "k": retrieval.k,
            "max_examples": retrieval.max_examples,
            "seed": seed,
            "json_mode": chat.json_mode,
        },
        "requests": chat.requests,
        "arms": scores,
        "intervals": intervals,
    }
