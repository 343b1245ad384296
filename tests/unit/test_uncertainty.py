"""The evaluation's difference intervals: a paired bootstrap over query groups."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.evaluation.metrics import aggregate
from indexer.evaluation.uncertainty import paired_intervals, resample_counts

S, D, M = frozenset({"surface_scratch"}), frozenset({"dent"}), frozenset({"missing_part"})


def _row(section, run, versus, metric):
    return next(
        c
        for c in section["comparisons"]
        if (c["run"], c["versus"], c["metric"]) == (run, versus, metric)
    )


def test_resampling_draws_whole_groups():
    groups = ["a", "a", "a", "b", "c", "c"]
    counts = resample_counts(groups, repeats=200, seed=1)
    assert counts.shape == (200, 6)
    # the three crops of photo "a" always come (or stay away) together, as do the two of "c"
    assert (counts[:, 0] == counts[:, 1]).all() and (counts[:, 1] == counts[:, 2]).all()
    assert (counts[:, 4] == counts[:, 5]).all()
    # three groups drawn per resample: the query count follows the drawn groups' sizes
    sizes = np.array([3, 3, 3, 1, 2, 2])
    assert set((counts / sizes).sum(1).round(6)) == {3.0}


def test_point_difference_is_the_summary_difference():
    truths = [S, S, D, D, M, S, S, D]
    groups = ["g0", "g0", "g1", "g1", "g2", "g3", "g3", "g4"]
    a = [[S], [D], [D], [S], [M], [S], [S], [S]]
    b = [[S], [S], [S], [S], [S], [D], [S], [D]]
    section = paired_intervals(truths, groups, {"a": a, "b": b}, [("a", "b")], [1], repeats=50)
    sa, _ = aggregate(truths, a, [1])
    sb, _ = aggregate(truths, b, [1])
    for metric in ("recall@1", "label_recall_macro@1"):
        row = _row(section, "a", "b", metric)
        assert row["difference"] == pytest.approx(sa[metric] - sb[metric])
        assert row["low"] <= row["high"]


def test_identical_runs_differ_by_exactly_nothing():
    truths = [S, D, S, M]
    ranking = [[S], [S], [D], [M]]
    section = paired_intervals(
        truths, ["a", "b", "c", "d"], {"x": ranking, "y": ranking}, [("x", "y")], [1], repeats=100
    )
    for row in section["comparisons"]:
        assert (row["difference"], row["low"], row["high"], row["share_ahead"]) == (0, 0, 0, 0)


def test_a_gain_in_every_group_is_sure_and_a_gain_in_one_group_is_not():
    truths = [D] * 20
    groups = [f"g{i // 2}" for i in range(20)]  # ten photos, two crops each
    always = [[D]] * 20
    never = [[S]] * 20
    once = [[D], [D]] + [[S]] * 18  # only photo g0's crops are found
    section = paired_intervals(
        truths,
        groups,
        {"always": always, "never": never, "once": once},
        [("always", "never"), ("once", "never")],
        [1],
        repeats=2000,
        seed=3,
    )
    sure = _row(section, "always", "never", "recall@1")
    assert sure["low"] == sure["high"] == 1.0 and sure["share_ahead"] == 1.0
    lucky = _row(section, "once", "never", "recall@1")
    assert lucky["difference"] == pytest.approx(0.1)
    # a resample without photo g0 (about (9/10)^10 = 35 % of them) shows no gain at all
    assert lucky["low"] == 0.0 and lucky["high"] > 0.1
    assert 0.55 < lucky["share_ahead"] < 0.75
    assert section["groups"] == 10 and section["repeats"] == 2000
