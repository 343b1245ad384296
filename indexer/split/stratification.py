"""The split as an optimisation over groups: the group x key count matrix, iterative
stratification (Sechidis et al. 2011) and the local search that refines and repairs it.

Written here rather than taken from the `iterative-stratification` package because that package
stratifies samples, not groups: a capture's images must land on one side together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from indexer.readers.records import Record

NO_DAMAGE = "no_damage"
ZONE_PREFIX = "zone:"
_PENALTY = 100.0  # per label with >= 2 groups that is missing from one side


@dataclass(frozen=True)
class GroupMatrix:
    """Group x key image counts; keys are labels first, then zones."""

    groups: list[str]
    keys: list[str]
    n_labels: int
    counts: npt.NDArray[np.float64]  # (G, K) images of the group carrying each key
    sizes: npt.NDArray[np.float64]  # (G,) images per group
    group_has: npt.NDArray[np.int64]  # (K,) groups carrying each key


def record_keys(record: Record) -> tuple[list[str], str]:
    """The label keys (``no_damage`` for an image without labels) and zone of a record."""
    labels = [k for k, n in record.labels.items() if n > 0] or [NO_DAMAGE]
    return labels, record.zone


def build_matrix(members: dict[str, list[Record]]) -> GroupMatrix:
    groups = sorted(members)
    labels: set[str] = set()
    zones: set[str] = set()
    for recs in members.values():
        for r in recs:
            lab, zone = record_keys(r)
            labels.update(lab)
            zones.add(zone)
    keys = sorted(labels) + [ZONE_PREFIX + z for z in sorted(zones)]
    index = {k: i for i, k in enumerate(keys)}
    counts = np.zeros((len(groups), len(keys)))
    sizes = np.zeros(len(groups))
    for gi, g in enumerate(groups):
        for r in members[g]:
            lab, zone = record_keys(r)
            for k in lab:
                counts[gi, index[k]] += 1
            counts[gi, index[ZONE_PREFIX + zone]] += 1
            sizes[gi] += 1
    return GroupMatrix(groups, keys, len(labels), counts, sizes, (counts > 0).sum(axis=0))


def stratify(p: GroupMatrix, test_size: float, rng: np.random.Generator) -> npt.NDArray[np.bool_]:
    """Sechidis et al.'s iterative stratification with group weights; True = test."""
    ratios = np.array([1.0 - test_size, test_size])
    desired = ratios[:, None] * p.counts.sum(axis=0)[None, :]  # (2, K)
    desired_size = ratios * p.sizes.sum()
    assigned = np.full(len(p.groups), -1)
    order = rng.permutation(len(p.groups))  # the visiting order is the seeded part
    labels = p.counts[:, : p.n_labels]
    while (assigned < 0).any():
        left = labels[assigned < 0].sum(axis=0)
        candidates = np.where(left > 0, left, np.inf)
        key = int(np.argmin(candidates))
        for g in order:
            if assigned[g] >= 0 or labels[g, key] == 0:
                continue
            zones = p.counts[g, p.n_labels :] > 0
            scores = [
                (
                    desired[f, key],
                    desired[f, p.n_labels :][zones].sum(),
                    desired_size[f],
                    rng.random(),
                )
                for f in (0, 1)
            ]
            fold = 0 if scores[0] > scores[1] else 1
            assigned[g] = fold
            desired[fold] -= p.counts[g]
            desired_size[fold] -= p.sizes[g]
    return assigned == 1


def _objective(
    p: GroupMatrix,
    test_counts: npt.NDArray[np.float64],
    test_images: npt.NDArray[np.float64],
    t: float,
    zone_weight: float,
) -> npt.NDArray[np.float64]:
    """Objective for a batch of candidate test sides: test_counts (..., K), test_images (...)."""
    totals = p.counts.sum(axis=0)
    dev = np.abs(test_counts / totals - t)
    label_dev = dev[..., : p.n_labels]
    spread = p.group_has[: p.n_labels] >= 2
    label_counts = test_counts[..., : p.n_labels]
    one_sided = spread & ((label_counts == 0) | (label_counts == totals[: p.n_labels]))
    size_dev = np.abs(test_images / p.sizes.sum() - t)
    return (
        label_dev.sum(axis=-1)
        + label_dev.max(axis=-1)
        + zone_weight * dev[..., p.n_labels :].sum(axis=-1)
        + p.n_labels * size_dev
        + _PENALTY * one_sided.sum(axis=-1)
    )


def improve(
    p: GroupMatrix,
    in_test: npt.NDArray[np.bool_],
    t: float,
    zone_weight: float,
    max_moves: int,
    swap_candidates: int = 48,
) -> npt.NDArray[np.bool_]:
    """Steepest-descent local search over single-group moves and pairwise swaps."""
    in_test = in_test.copy()
    for _ in range(max_moves):
        counts = p.counts[in_test].sum(axis=0)
        images = p.sizes[in_test].sum()
        current = float(_objective(p, counts, images, t, zone_weight))
        sign = np.where(in_test, -1.0, 1.0)
        moved = _objective(
            p, counts + sign[:, None] * p.counts, images + sign * p.sizes, t, zone_weight
        )
        best = int(np.argmin(moved))
        if moved[best] < current - 1e-9:
            in_test[best] = not in_test[best]
            continue
        # No single move helps: try swapping a train group with a test group.
        train_idx = np.flatnonzero(~in_test)
        test_idx = np.flatnonzero(in_test)
        a = train_idx[np.argsort(moved[train_idx], kind="stable")[:swap_candidates]]
        b = test_idx[np.argsort(moved[test_idx], kind="stable")[:swap_candidates]]
        delta = p.counts[a][:, None, :] - p.counts[b][None, :, :]
        size_delta = p.sizes[a][:, None] - p.sizes[b][None, :]
        swapped = _objective(p, counts + delta, images + size_delta, t, zone_weight)
        i, j = np.unravel_index(int(np.argmin(swapped)), swapped.shape)
        if swapped[i, j] < current - 1e-9:
            in_test[a[i]] = True
            in_test[b[j]] = False
            continue
        break
    return in_test
