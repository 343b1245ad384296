"""Label estimates in /retrieve and /context (every format, en/es), and mode probe over HTTP."""

from __future__ import annotations

import json

from api_fakes import jpeg

RED = (220, 30, 30)


def post(client, route, **data):
    return client.post(route, files={"image": ("q.jpg", jpeg(RED), "image/jpeg")}, data=data)


def test_retrieve_reports_estimates_above_the_threshold(make_client):
    every = post(make_client(label_estimate_threshold=0.0), "/retrieve").json()
    estimates = every["label_estimates"]
    assert {e["label"] for e in estimates} == {"surface_scratch", "dent", "crack", "no_damage"}
    probs = [e["probability"] for e in estimates]
    # the leading estimate (largest prior-corrected evidence) first, then by probability
    assert probs[1:] == sorted(probs[1:], reverse=True) and all(0 < p < 1 for p in probs)
    top = estimates[0]
    assert top["neighbours"] == len(every["hits"]) and 0 <= top["support"] <= top["neighbours"]
    # the threshold never hides the leading estimate
    lead = post(make_client(label_estimate_threshold=1.0), "/retrieve").json()
    assert [e["label"] for e in lead["label_estimates"]] == [top["label"]]


def test_probe_mode_and_its_weight_over_http(make_client):
    client = make_client()
    image = [h["id"] for h in post(client, "/retrieve", k="5").json()["hits"]]
    plain = post(client, "/retrieve", k="5", mode="probe", probe_weight="0")
    assert plain.status_code == 200 and plain.json()["mode"] == "probe"
    assert [h["id"] for h in plain.json()["hits"]] == image
    assert post(client, "/retrieve", mode="probe", probe_weight="-1").status_code == 422


def test_probe_without_a_head_is_a_clear_422(make_client, fakes):
    fakes.resources.retriever.artifacts.label_head = None
    r = post(make_client(), "/retrieve", mode="probe")
    assert r.status_code == 422 and "label head" in r.text


def test_context_words_estimates_as_estimates_in_english_and_spanish(make_client):
    client = make_client(label_estimate_threshold=0.0)
    md = post(client, "/context").json()
    assert "### Label estimates" in md["context"] and "estimates, not facts" in md["context"]
    assert "- likely: " in md["context"]
    assert md["label_estimates"] and md["label_estimates"][0]["name"]
    es = post(client, "/context", language="es", format="text").json()
    assert "Estimaciones de etiquetas" in es["context"] and "probable: " in es["context"]
    assert "," in es["context"].split("probable: ")[1].split("(")[0]  # decimal comma


def test_context_json_and_messages_carry_the_estimates(make_client):
    client = make_client(label_estimate_threshold=0.0)
    block = json.loads(post(client, "/context", format="json").json()["context"])
    assert [e["label"] for e in block["label_estimates"]]
    parts = post(client, "/context", format="messages").json()["messages"]
    assert any("likely: " in p.get("text", "") for p in parts)


def test_threshold_hides_all_but_the_leading_estimate_in_the_block(make_client):
    every = post(make_client(label_estimate_threshold=0.0), "/context").json()
    body = post(make_client(label_estimate_threshold=1.0), "/context").json()
    assert body["label_estimates"] == every["label_estimates"][:1]
    assert body["context"].count("- likely: ") == 1 < every["context"].count("- likely: ")
