"""The service on a Milvus-backed index (Milvus Lite): the /retrieve tests of test_retrieve run
again on it, writes by another opener are served without a restart, and a broken store makes
/ready answer 503 with the reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from api_fakes import Fakes, assert_error, jpeg
from test_retrieve import (  # the same assertions, now over Milvus
    post,
    test_each_filter_keeps_exactly_the_matching_items_in_image_order,
    test_filters_are_normalised_through_the_taxonomy_and_really_filter,
    test_red_upload_ranks_the_red_item_first_with_its_labels,
)

from indexer.index.artifacts import load_artifacts
from indexer.index.catalogue import CatalogueItem
from indexer.index.stores import StoreTarget
from indexer.index.updating import rewrite_artifacts

pytest.importorskip("milvus_lite")

__all__ = [
    "test_each_filter_keeps_exactly_the_matching_items_in_image_order",
    "test_filters_are_normalised_through_the_taxonomy_and_really_filter",
    "test_red_upload_ranks_the_red_item_first_with_its_labels",
]


@pytest.fixture
def fakes(tmp_path: Path) -> Fakes:
    return Fakes(tmp_path, store=StoreTarget("milvus", str(tmp_path / "milvus.db"), "svc"))


def ids(response):
    assert response.status_code == 200, response.text
    return [h["id"] for h in response.json()["hits"]]


def test_manifest_says_milvus(client):
    assert client.get("/info").json()["manifest"]["store"]["kind"] == "milvus"


def test_add_and_remove_are_served_without_restart(client, fakes, tmp_path):
    assert ids(post(client, k="2")) == ["red-1", "orange-5"]
    writer = load_artifacts(tmp_path / "art")  # e.g. `visrag index add` against the same store
    keep = np.array([it.id != "red-1" for it in writer.items])
    new = CatalogueItem(row=99, id="red-new", image="", labels={"crack": 1}, zone="hood_center",
                        area="frontal", description="1 crack on the hood",
                        group="red-new")  # fmt: skip
    vec = np.asarray(writer.image_vectors[0], np.float32)[None, :]
    txt = fakes.text_encoder.encode([new.description])
    rewrite_artifacts(writer, keep=keep, new_items=[new], new_image_vectors=vec,
                      new_text_vectors=txt)  # fmt: skip
    assert ids(post(client, k="2")) == ["red-new", "orange-5"]
    assert ids(post(client, k="5", labels_any="crack")) == ["red-new", "blue-3"]


def test_broken_store_is_503_on_ready_and_on_queries(client, fakes):
    assert client.get("/ready").status_code == 200
    fakes.resources.retriever.artifacts.image_store.client.drop_collection("svc_image")
    ready = client.get("/ready")
    assert ready.status_code == 503 and "svc_image" in ready.json()["reason"]
    assert_error(post(client, image=jpeg()), 503, "store_unavailable")
