"""Region geometry on the patch grid (models.regions): coverage, pooling, clusters, positions."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.retrieval.regions import position
from models import regions as geometry

GRID = geometry.Grid(rows=6, cols=8, width=320.0, height=240.0)  # 40 px patches


def test_a_box_on_whole_patches_covers_exactly_them():
    weights = geometry.coverage(geometry.box_polygon(40, 80, 80, 40), GRID)
    want = np.zeros((6, 8), np.float32)
    want[2, 1:3] = 1.0
    np.testing.assert_allclose(weights, want)


def test_coverage_is_fractional_for_a_box_across_patches():
    weights = geometry.coverage(geometry.box_polygon(20, 0, 40, 40), GRID)
    assert weights[0, 0] == pytest.approx(0.5) and weights[0, 1] == pytest.approx(0.5)
    assert weights.sum() == pytest.approx(1.0)


def test_a_defect_smaller_than_a_patch_keeps_the_patch_it_lies_in():
    touching = geometry.coverage(((201.0, 121.0), (212.0, 121.0), (206.0, 128.5)), GRID)
    assert np.flatnonzero(touching).tolist() == [3 * 8 + 5] and 0 < touching[3, 5] < 1
    between_samples = geometry.coverage(((201.0, 121.0), (203.0, 121.0), (202.0, 122.5)), GRID)
    assert np.flatnonzero(between_samples).tolist() == [3 * 8 + 5]


def test_a_region_outside_the_image_is_refused():
    with pytest.raises(geometry.RegionError, match="outside"):
        geometry.coverage(geometry.box_polygon(400, 10, 20, 20), GRID)
    with pytest.raises(geometry.RegionError, match="at least 2"):
        geometry.coverage(((1.0, 1.0),), GRID)


def test_pooling_is_the_weighted_mean_normalised():
    rng = np.random.default_rng(0)
    tokens = rng.normal(size=(6, 8, 5)).astype(np.float32)
    weights = np.zeros((6, 8), np.float32)
    weights[0, 0], weights[1, 1] = 1.0, 3.0
    want = tokens[0, 0] + 3 * tokens[1, 1]
    np.testing.assert_allclose(
        geometry.pool(tokens, weights), want / np.linalg.norm(want), rtol=1e-5
    )


def test_near_defects_cluster_and_far_ones_do_not():
    boxes = [(0, 0, 10, 10), (12, 0, 10, 10), (100, 100, 5, 5), (24, 2, 3, 3)]
    assert geometry.clusters(boxes, gap=3) == [[0, 1, 3]]
    assert geometry.clusters(boxes, gap=1) == []


def test_positions_read_as_a_person_would_say_them():
    assert position((0, 200, 20, 20), 320, 240).en == "lower left of the photo"
    assert position((150, 110, 20, 20), 320, 240).es == "en el centro de la foto"
    assert position((300, 0, 20, 20), 320, 240).es == "arriba a la derecha de la foto"


def test_damage_scores_subtract_the_closest_background():
    patches = np.eye(3, dtype=np.float32)
    regions = np.array([[1, 0, 0]], np.float32)
    bank = np.array([[0, 1, 0]], np.float32)
    scores = geometry.damage_scores(patches, regions, bank)
    np.testing.assert_allclose(scores, [1.0, -1.0, 0.0])


def test_best_match_is_the_exact_top_1_across_blocks_and_exclusions():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(50, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[[3, 17, 42]] + 0.01
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    scores, rows = geometry.best_match(queries, vectors, block=7)
    assert rows.tolist() == [3, 17, 42]
    np.testing.assert_allclose(scores, (queries * vectors[rows]).sum(axis=1), rtol=1e-6)
    allowed = np.ones(50, bool)
    allowed[[3, 17]] = False
    _, rows = geometry.best_match(queries, vectors, allowed=allowed, block=7)
    brute = np.where(allowed, queries @ vectors.T, -np.inf).argmax(axis=1)
    assert rows.tolist() == brute.tolist() and rows[2] == 42
    none = geometry.best_match(queries, vectors, allowed=np.zeros(50, bool))
    assert none[1].tolist() == [-1, -1, -1] and none[0].tolist() == [-1.0, -1.0, -1.0]
