"""`visrag evaluate` end to end: options -> queries -> retriever -> evaluation -> report files."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Sequence
from pathlib import Path

from indexer.evaluation.queries import (
    ORACLE,
    EvaluationError,
    leave_one_out_queries,
    load_queries,
    open_retriever,
)
from indexer.evaluation.report import write_report
from indexer.evaluation.results import Evaluation
from indexer.evaluation.runner import evaluate
from indexer.evaluation.uncertainty import DEFAULT_REPEATS
from indexer.query import QUERY_MODES

RANDOM_WEIGHTS_WARNING = (
    "THE IMAGE MODEL HAS RANDOM WEIGHTS ({model}): a tiny, randomly initialised test checkpoint. "
    "These figures measure the pipeline, not retrieval quality; do not report them."
)


def split_list(values: Sequence[str] | str | None) -> list[str]:
    """'image,rerank' or ['image', 'rerank,hybrid'] -> ['image', 'rerank', 'hybrid']."""
    if values is None:
        return []
    items = [values] if isinstance(values, str) else list(values)
    return [part.strip() for v in items for part in v.split(",") if part.strip()]


def parse_numbers(values: Sequence[str] | str | None, kind: type, name: str) -> list:
    try:
        return [kind(v) for v in split_list(values)]
    except ValueError as exc:
        raise EvaluationError(f"--{name}: {exc}") from exc


def run_evaluation(
    *,
    artifacts: Path,
    out: Path,
    queries: Path | None = None,
    leave_one_out: bool = False,
    modes: Sequence[str] = ("image",),
    ks: Sequence[int] = (1, 3, 5, 10),
    alphas: Sequence[float] | None = None,
    text_source: str | None = None,
    taxonomy: str | Path | None = None,
    device: str = "auto",
    image_model: str | None = None,
    text_model: str | None = None,
    rerank_candidates: int = 20,
    random_repeats: int = 20,
    seed: int = 0,
    bootstrap: int = DEFAULT_REPEATS,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Evaluation, dict[str, Path]]:
    """Evaluate artifacts on held-out queries (or leave-one-out) and write the three reports."""
    from models.taxonomy import load_taxonomy

    if (queries is None) == (not leave_one_out):
        raise EvaluationError("give exactly one of --queries FILE or --leave-one-out")
    modes = list(dict.fromkeys(modes)) or ["image"]
    for mode in modes:
        if mode not in QUERY_MODES:
            raise EvaluationError(f"unknown mode {mode!r}; expected {', '.join(QUERY_MODES)}")
    if "hybrid" in modes and not text_source:
        raise EvaluationError(
            "mode 'hybrid' needs --text-source FIELD (a JSONL field holding e.g. a VLM caption), "
            f"or --text-source {ORACLE} for a ground-truth upper bound"
        )
    if leave_one_out and text_source not in (None, ORACLE):
        raise EvaluationError("leave-one-out queries have no caption field; only 'oracle' text")
    tax = load_taxonomy(taxonomy)
    retriever = open_retriever(
        artifacts,
        taxonomy=tax,
        image=not leave_one_out,
        text=any(m in ("hybrid", "rerank") for m in modes),
        device=device,
        image_model=image_model,
        text_model=text_model,
        rerank_candidates=rerank_candidates,
    )
    if leave_one_out:
        query_list = leave_one_out_queries(retriever.artifacts, text_source=text_source)
    else:
        assert queries is not None
        query_list = load_queries(queries, tax, text_source=text_source)
    ev = evaluate(
        retriever,
        query_list,
        modes=modes,
        ks=ks,
        alphas=alphas or None,
        text_source=text_source,
        leave_one_out=leave_one_out,
        random_repeats=random_repeats,
        seed=seed,
        bootstrap=bootstrap,
        progress=progress,
    )
    image_info = retriever.artifacts.manifest.image_model
    if image_info.random_weights:
        ev.warnings.insert(0, RANDOM_WEIGHTS_WARNING.format(model=image_info.id))
    ev.setting.update(
        {
            "random_weights": image_info.random_weights,
            "artifacts": str(artifacts),
            "queries_file": str(queries) if queries else None,
            "machine": f"{platform.machine()} {platform.processor() or ''}, "
            f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}".replace(" ,", ","),
            "image_model": _model_id(retriever.manifest.get("image_model")),
            "text_model": _model_id(retriever.manifest.get("text_model")),
        }
    )
    return ev, write_report(ev, out)


def _model_id(info: object) -> str | None:
    if isinstance(info, dict):
        value = info.get("id") or info.get("model_id")
        return None if value is None else str(value)
    return None if info is None else str(info)
