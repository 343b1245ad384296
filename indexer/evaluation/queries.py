"""Evaluation queries and the retriever they go through.

A :class:`Query` carries its ground-truth labels for scoring only; what reaches the retriever is
the image (or its precomputed vector) and, for ``hybrid``, a text from an explicitly named source.
``oracle`` text is built from the ground truth: it leaks, and is labelled so wherever it appears.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.description import describe
from models.errors import VisragError
from models.taxonomy import Taxonomy

logger = logging.getLogger(__name__)

ORACLE = "oracle"
ORACLE_LABEL = "ORACLE (leaks ground truth; upper bound)"


class EvaluationError(VisragError):
    """The evaluation cannot run as asked (no queries, missing text for hybrid, bad k...)."""


@dataclass(frozen=True)
class Query:
    """One evaluation query. ``labels`` (canonical ids) are used for scoring only."""

    id: str
    labels: dict[str, int]
    zone: str = "unknown"
    group: str = ""
    image_path: Path | None = None
    vector: npt.NDArray[np.float32] | None = None
    text: str | None = None
    exclude_groups: tuple[str, ...] = ()
    exclude_ids: tuple[str, ...] = ()


# -- from a manifest or the catalogue -------------------------------------------------------------


def load_queries(path: Path, taxonomy: Taxonomy, *, text_source: str | None = None) -> list[Query]:
    """Queries from a JSONL manifest (e.g. ``test.jsonl`` from ``visrag split``).

    ``text_source`` names a JSONL field holding each query's text (for ``hybrid``), or
    ``oracle`` (text built from the ground-truth labels: leaks, an upper bound only).
    """
    from indexer.readers.dataset import read_dataset

    scan = read_dataset(path, taxonomy=taxonomy, format="jsonl")
    for problem in scan.problems:
        logger.warning("query %s: %s", problem.file, problem.reason)
    texts = _text_field(path, text_source) if text_source not in (None, ORACLE) else {}
    queries = []
    for rec in scan.records:
        if text_source == ORACLE:
            text: str | None = describe(rec.labels, rec.zone, taxonomy)
        elif text_source:
            text = texts.get(os.path.normpath(str(rec.image_path)))
        else:
            text = None
        queries.append(_query(rec, image_path=Path(rec.image_path), text=text))
    return queries


def _text_field(path: Path, field_name: str) -> dict[str, str]:
    """Normalised absolute image path -> the named field's text, from the raw JSONL lines."""
    out: dict[str, str] = {}
    for line in Path(path).read_text("utf-8").splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("image"), str):
            value = entry.get(field_name)
            if isinstance(value, str) and value.strip():
                image = os.path.normpath(str(Path(path).parent / entry["image"]))
                out[image] = value
    return out


def _query(source: Any, **fields: Any) -> Query:
    """A query carrying ``source``'s id, labels, zone and group (a record or catalogue item)."""
    return Query(
        id=source.id,
        labels=dict(source.labels),
        zone=source.zone,
        group=source.group,
        **fields,
    )


def leave_one_out_queries(artifacts: Any, *, text_source: str | None = None) -> list[Query]:
    """Each catalogue item queries the rest, excluding its own group (source image) and itself."""
    queries = []
    for item in artifacts.items:
        text = item.description if text_source == ORACLE else None
        queries.append(
            _query(
                item,
                vector=artifacts.image_vectors[item.row],
                text=text,
                exclude_groups=(item.group,) if item.group else (),
                exclude_ids=(item.id,),
            )
        )
    return queries


def open_retriever(
    artifacts_dir: Path,
    *,
    taxonomy: Taxonomy,
    image: bool,
    text: bool,
    device: str = "auto",
    image_model: str | None = None,
    text_model: str | None = None,
    rerank_candidates: int = 20,
) -> Any:
    """Open the index with only the encoders the run needs
    (:func:`indexer.retrieval.opening.open_index`).

    ``image``: queries are image files (not precomputed vectors); ``text``: a mode needs the text
    encoder (``hybrid``, ``rerank``). Overrides name a local copy of the same model.
    """
    from indexer.retrieval.opening import Overrides, open_index

    opened = open_index(
        artifacts_dir,
        Overrides(
            device=device,
            image_model=image_model,
            text_model=text_model,
            taxonomy=taxonomy,
            load_image=image,
            load_text=text,
        ),
    )
    return opened.retriever(rerank_candidates=rerank_candidates)
