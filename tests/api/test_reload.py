"""Live reload with the real Retriever over a real flat index: a write to the served directory is
seen without a restart, a broken generation is refused while the old one keeps serving, and a
request keeps the generation it started with."""

from __future__ import annotations

import json
import time

from api_fakes import jpeg
from prometheus_client.parser import text_string_to_metric_families

from indexer.build.pipeline import remove_items


def info(client) -> dict:
    return client.get("/info").json()["runtime"]


def wait_for(client, predicate, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runtime = info(client)
        if predicate(runtime):
            return runtime
        time.sleep(0.05)
    raise AssertionError(f"condition not reached: {info(client)}")


def reloads(client) -> dict[str, float]:
    out = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for s in family.samples:
            if s.name == "visrag_index_reload_total":
                out[s.labels["outcome"]] = s.value
            if s.name == "visrag_index_generation":
                out["generation"] = s.value
    return out


def top_ids(client) -> list[str]:
    files = {"image": ("q.jpg", jpeg((220, 30, 30)), "image/jpeg")}
    r = client.post("/retrieve", files=files, data={"k": "5"})
    assert r.status_code == 200, r.text
    return [h["id"] for h in r.json()["hits"]]


def test_a_removed_item_disappears_without_restart(make_client, fakes, tmp_path):
    client = make_client(reload_interval_s=0)  # SIGHUP only
    before = info(client)
    assert before["generation"] == 1 and before["index_size"] == 5
    assert top_ids(client)[0] == "red-1"
    assert client.get("/items/red-1/image").status_code == 200

    remove_items(tmp_path / "art", ["red-1"])
    client.app.state.service.reloader.request()  # what SIGHUP calls
    after = wait_for(client, lambda r: r["generation"] == 2)
    assert after["index_size"] == 4 and after["reload"]["last_outcome"] == "ok"
    assert "red-1" not in top_ids(client)
    assert client.get("/items/red-1/image").status_code == 404
    assert client.get("/info").json()["manifest"]["vector_count"] == 4
    assert reloads(client) == {"ok": 1.0, "generation": 2.0}


def test_the_directory_is_polled(make_client, tmp_path):
    client = make_client(reload_interval_s=0.1)
    remove_items(tmp_path / "art", ["blue-3"])
    assert wait_for(client, lambda r: r["generation"] == 2)["index_size"] == 4


def test_a_broken_generation_is_refused_and_the_old_one_keeps_serving(make_client, tmp_path):
    client = make_client(reload_interval_s=0)
    manifest_file = tmp_path / "art" / "manifest.json"
    original = manifest_file.read_text()
    manifest = json.loads(original)
    manifest["fusion"]["alpha"] = 0.9
    manifest_file.write_text(json.dumps(manifest))
    client.app.state.service.reloader.request()
    runtime = wait_for(client, lambda r: r["reload"]["last_outcome"] == "refused")
    assert runtime["generation"] == 1 and "manifest checksum" in runtime["reload"]["last_error"]
    assert top_ids(client)[0] == "red-1"  # still serving
    assert reloads(client) == {"refused": 1.0, "generation": 1.0}

    manifest_file.write_text(original)  # undone; then a good write is served
    remove_items(tmp_path / "art", ["grey-4"])
    client.app.state.service.reloader.request()
    runtime = wait_for(client, lambda r: r["generation"] == 2)
    assert runtime["index_size"] == 4 and runtime["reload"]["last_error"] is None


def test_a_request_keeps_the_generation_it_started_with(make_client, tmp_path):
    client = make_client(reload_interval_s=0)
    service = client.app.state.service
    in_flight = service.require_ready()  # what a request holds from its first line
    remove_items(tmp_path / "art", ["green-2"])
    service.reloader.request()
    wait_for(client, lambda r: r["generation"] == 2)
    assert in_flight.image_path("green-2") is not None  # its generation, to the end
    assert service.require_ready().image_path("green-2") is None  # the next request's
