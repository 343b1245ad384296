"""Localisation metrics on hand-computed cases: pointing game, chance level, overlap."""

from __future__ import annotations

import pytest

from indexer.build.crops import crop_box
from indexer.evaluation.localisation import (
    overlap,
    point_in_polygon,
    pointing_hit,
    summarise,
    truth_share,
)

SQUARE = ((10.0, 10.0), (30.0, 10.0), (30.0, 30.0), (10.0, 30.0))
TRIANGLE = ((50.0, 50.0), (90.0, 50.0), (50.0, 90.0))


def test_point_in_polygon_inside_outside_and_concave():
    assert point_in_polygon((20, 20), SQUARE)
    assert not point_in_polygon((31, 20), SQUARE)
    assert point_in_polygon((55, 55), TRIANGLE)
    assert not point_in_polygon((85, 85), TRIANGLE)  # inside the box, outside the hypotenuse
    notch = ((0, 0), (40, 0), (40, 40), (20, 10), (0, 40))  # a V cut from the top
    assert point_in_polygon((5, 20), notch)
    assert not point_in_polygon((20, 30), notch)
    assert not point_in_polygon((1, 1), ((0, 0), (2, 2)))  # two points hold no area


def test_pointing_hit_needs_the_peak_inside_any_true_polygon():
    assert pointing_hit((60, 60), [SQUARE, TRIANGLE])
    assert not pointing_hit((40, 40), [SQUARE, TRIANGLE])
    assert not pointing_hit((20, 20), [])


def test_chance_is_the_share_of_the_photo_inside_the_polygons():
    assert truth_share([SQUARE], (100, 100)) == pytest.approx(0.04, abs=1e-3)
    # overlapping polygons count once
    assert truth_share([SQUARE, SQUARE], (100, 100)) == pytest.approx(0.04, abs=1e-3)


def test_overlap_exact_half_and_miss():
    exact = overlap([(10, 10, 20, 20)], [SQUARE], (100, 100))
    assert exact["iou"] == pytest.approx(1.0, abs=1e-3)
    assert exact["inside_share"] == pytest.approx(1.0, abs=1e-3)
    # a box as wide, shifted right by half: intersection 200, union 600 px²
    half = overlap([(20, 10, 20, 20)], [SQUARE], (100, 100))
    assert half["iou"] == pytest.approx(1 / 3, abs=0.02)
    assert half["inside_share"] == pytest.approx(0.5, abs=0.02)
    # a box twice the square's size around it: all of the square found, half the box on it
    loose = overlap([(10, 10, 40, 20)], [SQUARE], (100, 100))
    assert loose["iou"] == pytest.approx(0.5, abs=0.02)
    miss = overlap([(60, 10, 20, 20)], [SQUARE], (100, 100))
    assert miss["iou"] == 0.0 and miss["inside_share"] == 0.0
    none = overlap([], [SQUARE], (100, 100))
    assert none["iou"] == 0.0 and none["inside_share"] is None


def test_summary_means_and_group_intervals():
    rows = [
        {"group": "a", "pointing": 1.0, "chance": 0.1, "iou": 0.5, "inside_share": 0.5, "areas": 1},
        {
            "group": "b",
            "pointing": 0.0,
            "chance": 0.1,
            "iou": 0.0,
            "inside_share": None,
            "areas": 0,
        },
    ]
    out = summarise(rows, repeats=200, seed=0)
    assert out["photos"] == 2 and out["with_areas"] == 1
    assert out["pointing"]["mean"] == 0.5
    low, high = out["pointing"]["interval"]
    assert low == 0.0 and high == 1.0  # two groups: a resample may hold either twice
    assert out["inside_share"] == {"mean": 0.5, "n": 1, "interval": [0.5, 0.5]}


def test_crop_box_is_a_square_with_the_margin_inside_the_photo():
    # a 20 × 10 box: side 20 * 1.5 + 16 = 46 px, centred on the box
    assert crop_box((100, 100, 20, 10), (640, 480)) == (87, 82, 133, 128)
    # at the corners: moved inside, still square, never empty
    assert crop_box((0, 0, 5, 5), (640, 480)) == (0, 0, 24, 24)
    assert crop_box((639, 479, 0, 0), (640, 480)) == (624, 464, 640, 480)
    # larger than the photo's height: the whole height
    assert crop_box((0, 100, 400, 200), (640, 480))[1::2] == (0, 480)
