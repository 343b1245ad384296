"""The evaluation's difference intervals: a paired bootstrap over query groups."""

from __future__ import annotations

import pytest

from indexer.evaluation.results import aggregate
from indexer.evaluation.uncertainty import group_draws, paired_intervals

S, D, M = frozenset({"surface_scratch"}), frozenset({"dent"}), frozenset({"missing_part"})


def _row(section, run, versus, metric):
    return next(
        c
        for c in section["comparisons"]
        if (c["run"], c["versus"], c["metric"]) == (run, versus, metric)
    )


def test_resampling_draws_whole_groups():
    groups = ["a", "a", "a", "b", "c", "c"]
    counts, index = group_draws(groups, repeats=200, seed=1)
    assert counts.shape == (200, 3) and set(counts.sum(1)) == {3.0}  # three photos per resample
    # the three crops of photo "a" share one group, as do the two of "c"
    assert index.tolist() == [0, 0, 0, 1, 2, 2]
    # every photo is sometimes left out and sometimes drawn more than once
    assert (counts == 0).any(0).all() and (counts >= 2).any(0).all()


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
