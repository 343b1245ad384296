"""The catalogue's label head: fitted whenever the artifacts are written, stored as arrays.

:func:`fit_catalogue_head` fits :func:`indexer.labels.head.fit_label_head` on the stored image
vectors and each item's verified canonical label set (``no_damage`` a column like the others;
an item without labels carries ``no_damage``), groups = the item's source image (its id when it
has none). A catalogue whose head cannot be fitted (fewer than two groups, fewer than two labels)
gets a manifest section saying why, and no arrays; mode ``probe`` then answers a
:class:`~indexer.query.QueryError`. :mod:`.artifacts` names the files and checksums them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from indexer.index.manifest import LabelHeadSection
from indexer.labels.head import LabelHead, LabelHeadError, fit_label_head

# Mode probe's defaults: the weight is chosen with every fit (1 only where no head could be
# fitted); the candidate count is configuration (a refit keeps the index's own).
DEFAULT_WEIGHT = 1.0
DEFAULT_CANDIDATES = 50
HEAD_ARRAYS = ("mean", "scale", "weights", "bias", "platt", "prior")


def item_label_set(labels: Mapping[str, int], no_damage: str) -> frozenset[str]:
    """Canonical ids with a positive count; an item without labels carries ``no_damage``."""
    ids = {str(k) for k, v in labels.items() if int(v) > 0}
    return frozenset(ids) if ids else frozenset({no_damage})


def label_matrix(
    items: Sequence[Any], labels: Sequence[str], no_damage: str
) -> npt.NDArray[np.float64]:
    """(n, L) 0/1: column j is whether item i carries ``labels[j]``."""
    column = {lb: j for j, lb in enumerate(labels)}
    y = np.zeros((len(items), len(labels)), np.float64)
    for i, item in enumerate(items):
        for lb in item_label_set(item.labels, no_damage):
            if lb in column:
                y[i, column[lb]] = 1.0
    return y


def catalogue_labels(items: Sequence[Any], no_damage: str) -> list[str]:
    """The head's columns: every label the catalogue carries, sorted (no_damage included)."""
    return sorted(set().union(*(item_label_set(it.labels, no_damage) for it in items)))


def item_groups(items: Sequence[Any]) -> list[str]:
    return [it.group or it.id for it in items]


def fit_catalogue_head(
    items: Sequence[Any],
    image_vectors: npt.ArrayLike,
    *,
    no_damage: str,
    previous: LabelHeadSection | None = None,
) -> tuple[LabelHeadSection, dict[str, npt.NDArray[Any]]]:
    """The manifest section and the arrays to store (none when no head can be fitted).

    ``previous``: the section of the index being rewritten; its candidate count carries over
    (configuration). The probe weight is refitted with the head, from the catalogue alone.
    """
    weight = DEFAULT_WEIGHT
    candidates = previous.probe_candidates if previous is not None else DEFAULT_CANDIDATES
    labels = catalogue_labels(items, no_damage) if items else []
    groups = item_groups(items)
    reason = None
    if len(labels) < 2:
        reason = f"the catalogue carries {len(labels)} label(s); the head needs at least two"
    elif len(set(groups)) < 2:
        reason = "the catalogue has one group (source image); the head needs two to calibrate"
    if reason is None:
        try:
            head = fit_label_head(
                np.asarray(image_vectors, np.float64),
                label_matrix(items, labels, no_damage),
                labels,
                groups,
            )
        except LabelHeadError as exc:
            reason = str(exc)
    if reason is not None:
        section = LabelHeadSection(
            status="unavailable", reason=reason, probe_weight=weight, probe_candidates=candidates
        )
        return section, {}
    section = LabelHeadSection.model_validate(
        {
            **head.describe(),
            "status": "fitted",
            "probe_weight": head.weight,
            "probe_candidates": candidates,
        }
    )
    return section, head.to_arrays()


def head_from_arrays(section: LabelHeadSection, arrays: Mapping[str, Any]) -> LabelHead:
    """Rebuild the stored head (raises :class:`LabelHeadError` on a mismatch)."""
    description = section.model_dump(
        exclude={"status", "reason", "probe_weight", "probe_candidates"}
    )
    return LabelHead.from_arrays(arrays, description, weight=section.probe_weight)
