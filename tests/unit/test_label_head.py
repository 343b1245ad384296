"""The label head: calibrated on separable data, deterministic, stored as arrays + JSON, leak-free
cross-fitting; and probe scoring."""

from __future__ import annotations

import json

import numpy as np
import pytest

from indexer.labels.agreement import label_evidence, probe_order
from indexer.labels.calibration import group_folds
from indexer.labels.head import LabelHead, LabelHeadError, cross_fit_proba, fit_label_head

LABELS = ["dent", "no_damage", "surface_scratch"]


def _data(seed: int = 0, per_group: int = 4, n_groups: int = 12, dim: int = 16):
    """Three well separated classes (one label each), groups of ``per_group`` rows of one class."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dim)) * 3
    x, y, groups = [], [], []
    for g in range(n_groups):
        c = g % 3
        for _ in range(per_group):
            x.append(centres[c] + rng.normal(size=dim))
            y.append(np.eye(3)[c])
            groups.append(f"g{g}")
    return np.array(x), np.array(y), groups


def test_separable_data_gets_confident_correct_probabilities() -> None:
    x, y, groups = _data()
    head = fit_label_head(x, y, LABELS, groups)
    xt, yt, _ = _data(seed=0, n_groups=3)  # same centres, fresh noise
    p = head.predict_proba(xt + np.random.default_rng(1).normal(size=xt.shape) * 0.1)
    assert p.shape == yt.shape
    assert (p.argmax(1) == yt.argmax(1)).all()
    assert p[yt == 1].min() > 0.7
    assert p[yt == 0].max() < 0.3


def test_calibrated_probabilities_track_frequencies_on_noisy_labels() -> None:
    """Labels independent of the vectors: calibrated probabilities sit near the label prior."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, 8))
    y = (rng.random((120, 1)) < 0.25).astype(float)
    y = np.hstack([y, 1 - y])
    head = fit_label_head(x, y, ["dent", "no_damage"], [f"g{i // 3}" for i in range(120)])
    p = head.predict_proba(rng.normal(size=(50, 8)))
    assert abs(p[:, 0].mean() - y[:, 0].mean()) < 0.1
    assert p[:, 0].max() < 0.6


def test_fit_is_deterministic_for_a_seed() -> None:
    x, y, groups = _data()
    a = fit_label_head(x, y, LABELS, groups, seed=7)
    b = fit_label_head(x, y, LABELS, groups, seed=7)
    np.testing.assert_array_equal(a.predict_proba(x), b.predict_proba(x))
    np.testing.assert_array_equal(group_folds(groups, 5, seed=7), group_folds(groups, 5, seed=7))


def test_round_trip_through_npy_and_json(tmp_path) -> None:
    x, y, groups = _data()
    head = fit_label_head(x, y, LABELS, groups, reg=0.05, weight=2.0)
    for name, arr in head.to_arrays().items():
        np.save(tmp_path / f"{name}.npy", arr, allow_pickle=False)
    (tmp_path / "head.json").write_text(json.dumps(head.describe()))
    arrays = {p.stem: np.load(p, allow_pickle=False) for p in tmp_path.glob("*.npy")}
    back = LabelHead.from_arrays(
        arrays, json.loads((tmp_path / "head.json").read_text()), weight=head.weight
    )
    assert back.weight == 2.0
    np.testing.assert_array_equal(back.predict_proba(x), head.predict_proba(x))
    d = back.describe()
    assert d["labels"] == LABELS
    assert d["reg"] == 0.05 and d["training_size"] == len(x) and d["groups"] == 12
    assert "platt" in d["calibration"] and d["fit_seconds"] >= 0


def test_from_arrays_rejects_mismatched_state() -> None:
    x, y, groups = _data()
    arrays = fit_label_head(x, y, LABELS, groups).to_arrays()
    with pytest.raises(LabelHeadError):
        LabelHead.from_arrays(arrays, {"labels": LABELS[:2]})
    with pytest.raises(LabelHeadError):
        LabelHead.from_arrays({}, {"labels": LABELS})


def test_folds_never_split_a_group_and_one_group_is_refused() -> None:
    _, _, groups = _data()
    folds = group_folds(groups, 5)
    for g in set(groups):
        assert len({int(f) for f, s in zip(folds, groups, strict=True) if s == g}) == 1
    assert len(set(folds.tolist())) == 5
    assert len(set(group_folds(groups, 10).tolist())) == 10
    with pytest.raises(LabelHeadError):
        fit_label_head(np.zeros((3, 2)), np.ones((3, 1)), ["dent"], ["a", "a", "a"])


def test_cross_fit_never_sees_the_held_out_group() -> None:
    """A label carried by one group only: out of fold, that group gets ~0 for it, not ~1."""
    x, y, groups = _data()
    unique = np.array([[1.0] if g == "g0" else [0.0] for g in groups])
    y2 = np.hstack([y, unique])
    in_sample = fit_label_head(x, y2, [*LABELS, "rare"], groups).predict_proba(x)
    crossed = cross_fit_proba(x, y2, groups)
    rows = [i for i, g in enumerate(groups) if g == "g0"]
    assert in_sample[rows, 3].min() > crossed[rows, 3].max()
    assert crossed[rows, 3].max() < 0.1
    # the shared labels are still learned from the other groups
    assert (crossed[:, :3].argmax(1) == y.argmax(1)).all()


def test_bad_shapes_are_expected_errors() -> None:
    x, y, groups = _data()
    with pytest.raises(LabelHeadError):
        fit_label_head(x, y[:-1], LABELS, groups[:-1])
    with pytest.raises(LabelHeadError):
        fit_label_head(x, y * 2, LABELS, groups)
    head = fit_label_head(x, y, LABELS, groups)
    with pytest.raises(LabelHeadError):
        head.predict_proba(np.zeros((1, 3)))


def test_probe_picks_the_first_hit_by_evidence_and_keeps_image_order_below() -> None:
    cos = [0.80, 0.75, 0.70]
    cand = [[0, 0, 1], [1, 0, 0], [1, 0, 1]]  # scratch, dent, dent+scratch
    prior = np.array([0.1, 0.1, 0.8])
    evidence = label_evidence([0.6, 0.0, 0.6], prior)  # dent stands out once the prior is out
    assert probe_order(["a", "b", "c"], cos, cand, evidence, weight=0.0) == [0, 1, 2]
    assert probe_order(["a", "b", "c"], cos, cand, evidence, weight=1.0) == [2, 0, 1]
    with pytest.raises(ValueError):
        probe_order(["a", "b", "c"], cos, cand, evidence, weight=-1.0)


def test_the_frequent_label_does_not_win_by_frequency() -> None:
    """Equal raw evidence for a label on 80 % of items and one on 5 %: the rare one leads."""
    evidence = label_evidence([0.5, 0.5], [0.05, 0.8])
    assert evidence[0] > evidence[1]
    cand = [[0, 1], [1, 0]]
    assert probe_order(["frequent", "rare"], [0.9, 0.88], cand, evidence, weight=1.0)[0] == 1


def test_a_head_without_evidence_is_image_search() -> None:
    evidence = label_evidence([-0.2, 0.0], [0.5, 0.5])
    assert not evidence.any()
    assert probe_order(["a", "b"], [0.5, 0.9], [[1, 0], [0, 1]], evidence, weight=4.0) == [1, 0]
