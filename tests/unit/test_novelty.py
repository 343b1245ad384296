"""The novelty p-value and its held-out-label check: unseen damage comes out far."""

from __future__ import annotations

import numpy as np

from indexer.evaluation.novelty_check import held_out_labels
from indexer.retrieval.novelty import closeness, p_value, reference


def _clusters(seed: int = 0, per_group: int = 3, n_groups: int = 40, dim: int = 16):
    """Four labels on separate directions, one label per photo of ``per_group`` crops."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, dim)) * 3
    kinds = [g % 4 for g in range(n_groups) for _ in range(per_group)]
    x = centres[kinds] + rng.normal(size=(len(kinds), dim))
    y = np.eye(4)[kinds]
    groups = [f"g{i // per_group}" for i in range(len(kinds))]
    return x, y, groups


def test_a_query_far_from_every_case_gets_a_small_p_value() -> None:
    x, _, groups = _clusters()
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    ref = reference(x, groups)
    near = closeness(x[:1] @ x[3:].T)  # a catalogue crop, its own photo left out
    far = closeness(-(x[:1] @ x.T))  # the opposite direction: nothing is close
    assert p_value(far, ref)[0] == 1 / (len(ref) + 1)
    assert p_value(near, ref)[0] > 0.2


def test_held_out_labels_are_flagged_on_separable_vectors_and_not_on_noise() -> None:
    x, y, groups = _clusters()
    labels = ["crack", "dent", "missing_part", "surface_scratch"]
    report = held_out_labels(x, y, labels, groups)
    assert [r["label"] for r in report] == labels and all(r["held_out"] == 30 for r in report)
    assert min(r["auroc"] for r in report) > 0.95
    noise = np.random.default_rng(1).normal(size=x.shape)
    assert max(abs(r["auroc"] - 0.5) for r in held_out_labels(noise, y, labels, groups)) < 0.2
