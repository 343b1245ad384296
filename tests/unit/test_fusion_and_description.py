from __future__ import annotations

import itertools

import numpy as np
import pytest

from models.description import describe
from models.fusion import fuse, l2_normalise


def test_fusion_inner_product_is_the_weighted_cosine_sum():
    rng = np.random.default_rng(0)
    img = l2_normalise(rng.normal(size=(5, 64)))
    txt = l2_normalise(rng.normal(size=(5, 16)))
    for alpha in (0.0, 0.3, 0.6, 1.0):
        h = fuse(img, txt, alpha=alpha)
        expected = alpha * img @ img.T + (1 - alpha) * txt @ txt.T
        np.testing.assert_allclose(h @ h.T, expected, atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(h, axis=1), 1.0, atol=1e-6)


def test_image_only_query_scores_the_image_half_only():
    rng = np.random.default_rng(1)
    img = l2_normalise(rng.normal(size=(3, 8)))
    txt = l2_normalise(rng.normal(size=(3, 4)))
    docs = fuse(img, txt, alpha=0.6)
    query = fuse(img[:1], None, alpha=0.6, text_dim=4)
    np.testing.assert_allclose(query @ docs.T, 0.6 * img[:1] @ img.T, atol=1e-6)


def test_fusion_rejects_bad_alpha():
    with pytest.raises(ValueError, match="alpha"):
        fuse(np.ones((1, 2), np.float32), None, alpha=1.5, text_dim=2)


def test_description_counts_plurals_and_zone(taxonomy):
    text = describe({"dent": 1, "surface_scratch": 12}, "hood_center", taxonomy)
    assert text == "12 surface scratches and 1 dent on the hood center (frontal area)"
    assert describe({}, "5", taxonomy) == "no visible damage on the rear bumper (rear area)"
    es = describe({"crack": 2}, "hood_center", taxonomy, language="es")
    assert es.startswith("2 grietas en")


def test_description_is_independent_of_label_order(taxonomy):
    labels = {"crack": 1, "dent": 3, "surface_scratch": 1, "paint_peeling": 3}
    texts = {describe(dict(p), "7", taxonomy) for p in itertools.permutations(labels.items())}
    assert texts == {
        "3 dents, 3 paint peeling areas, 1 surface scratch and 1 crack on the driver side door "
        "(left side)"
    }
