"""The service on a Milvus-backed index (Milvus Lite): the /retrieve tests of test_retrieve run
again on it; a write by another opener is served after the reloader's generation swap (before it,
the old generation skips the collection's ids it does not know); a generation whose collection
is missing is refused while the old one serves, one that failed while Milvus was down is tried
again at the next check; a broken store makes /ready answer 503."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from api_fakes import Fakes, assert_error, jpeg
from test_reload import info, reloads
from test_retrieve import (  # the same assertions, now over Milvus
    post,
    test_each_filter_keeps_exactly_the_matching_items_in_image_order,
    test_filters_are_normalised_through_the_taxonomy_and_really_filter,
    test_red_upload_ranks_the_red_item_first_with_its_labels,
)

from indexer.index.artifacts import load_artifacts
from indexer.index.catalogue import CatalogueItem
from indexer.index.manifest import manifest_checksum
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


def reload(client) -> str:
    """The reloader's own check (what SIGHUP and the poller run), on the app's event loop."""
    return client.portal.call(client.app.state.service.reloader.check)


def write_elsewhere(fakes, directory):
    """`visrag index add` + `remove` by another opener: Milvus first, then the directory."""
    writer = load_artifacts(directory)
    keep = np.array([it.id != "red-1" for it in writer.items])
    new = CatalogueItem(
        row=99,
        id="red-new",
        image="",
        labels={"crack": 1},
        zone="hood_center",
        area="frontal",
        description="1 crack on the hood",
        group="red-new",
    )
    vec = np.asarray(writer.image_vectors[0], np.float32)[None, :]  # red-1's: the top for RED
    txt = fakes.text_encoder.encode([new.description])
    rewrite_artifacts(
        writer, keep=keep, new_items=[new], new_image_vectors=vec, new_text_vectors=txt
    )


def test_a_write_is_served_after_a_reload(make_client, fakes, tmp_path):
    client = make_client(reload_interval_s=0)  # reloads only when asked
    assert ids(post(client, k="2")) == ["red-1", "orange-5"]
    write_elsewhere(fakes, tmp_path / "art")
    # generation 1 shares the collection: red-1 is gone from it, red-new is not in its catalogue
    before = ids(post(client, k="2"))
    assert len(before) == 2 and before[0] == "orange-5" and "red-new" not in before
    assert ids(post(client, k="5", labels_any="crack")) == ["blue-3"]
    assert info(client)["generation"] == 1

    assert reload(client) == "ok"
    runtime = info(client)
    assert runtime["generation"] == 2 and runtime["index_size"] == 5
    assert ids(post(client, k="2")) == ["red-new", "orange-5"]
    assert ids(post(client, k="5", labels_any="crack")) == ["red-new", "blue-3"]
    assert reloads(client) == {"ok": 1.0, "generation": 2.0}


def test_a_generation_naming_a_missing_collection_is_refused(make_client, tmp_path):
    client = make_client(reload_interval_s=0)
    path = tmp_path / "art" / "manifest.json"
    data = json.loads(path.read_text())
    data["store"]["collection"] = "gone"
    data["manifest_sha256"] = manifest_checksum(data)  # a consistent manifest, a missing store
    path.write_text(json.dumps(data))
    assert reload(client) == "refused"
    runtime = info(client)
    assert runtime["generation"] == 1
    assert "Milvus collection 'gone_image' does not exist" in runtime["reload"]["last_error"]
    assert reloads(client) == {"refused": 1.0, "generation": 1.0}
    assert ids(post(client, k="2")) == ["red-1", "orange-5"]  # the old generation still serves
    assert reload(client) == "unchanged"  # refused once: not opened again until the next write


def test_a_generation_refused_while_milvus_was_down_is_tried_again(make_client, fakes, tmp_path):
    client = make_client(reload_interval_s=0)
    write_elsewhere(fakes, tmp_path / "art")
    milvus = fakes.resources.retriever.artifacts.image_store.client
    milvus.rename_collection("svc_image", "svc_away")  # the store is down for every generation
    assert reload(client) == "refused" and client.get("/ready").status_code == 503
    milvus.rename_collection("svc_away", "svc_image")  # back
    assert reload(client) == "ok"  # not forced: the refusal was not held against the write
    assert info(client)["generation"] == 2
    assert ids(post(client, k="2")) == ["red-new", "orange-5"]


def test_broken_store_is_503_on_ready_and_on_queries(client, fakes):
    assert client.get("/ready").status_code == 200
    fakes.resources.retriever.artifacts.image_store.client.drop_collection("svc_image")
    ready = client.get("/ready")
    assert ready.status_code == 503 and "svc_image" in ready.json()["reason"]
    assert_error(post(client, image=jpeg()), 503, "store_unavailable")
