"""``item=ID`` on /retrieve and /context: "more like this" from a stored item, without it."""

from __future__ import annotations

from api_fakes import assert_error, jpeg

W = {"X-API-Key": "w-key"}


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [hit["id"] for hit in response.json()["hits"]]


def test_retrieve_by_item_leaves_the_item_out(client):
    as_form = client.post("/retrieve", files={"item": (None, "red-1")}, data={"k": "4"})
    assert ids(as_form) == ["orange-5", "grey-4", "green-2", "blue-3"]  # by colour, red-1 gone
    as_query = client.post("/retrieve", params={"item": "red-1", "k": "4"})
    assert ids(as_query) == ids(as_form)
    assert as_query.json()["timings"].keys().isdisjoint({"decode", "encode"})  # no model call


def test_context_by_item(client):
    r = client.post("/context", params={"item": "blue-3", "k": "2", "format": "json"})
    assert r.status_code == 200, r.text
    cases = [case["id"] for case in r.json()["cases"]]
    assert len(cases) == 2 and "blue-3" not in cases


def test_an_image_and_an_item_or_neither_or_an_unknown_item(client):
    both = client.post(
        "/retrieve", files={"image": ("q.jpg", jpeg(), "image/jpeg")}, data={"item": "red-1"}
    )
    assert_error(both, 422, "bad_parameter")
    assert_error(client.post("/retrieve", files={"k": (None, "3")}), 422, "bad_parameter")
    assert_error(client.post("/retrieve", params={"item": "nope"}), 404, "not_found")


def test_exclude_group_leaves_out_the_items_group(make_client):
    client = make_client(write_keys="w-key", reload_interval_s=0)
    twin = client.post(
        "/items",
        files={"image": ("t.jpg", jpeg((215, 35, 35)), "image/jpeg")},
        data={"id": "red-twin", "group": "red-1"},
        headers=W,
    )
    assert twin.status_code == 201, twin.text
    assert ids(client.post("/retrieve", params={"item": "red-1", "k": "1"})) == ["red-twin"]
    grouped = client.post("/retrieve", params={"item": "red-1", "k": "1", "exclude_group": "true"})
    assert ids(grouped) == ["orange-5"]
