"""Damage regions over HTTP, in-process, with the tiny random DINOv3 at 224 px and real FAISS: a
region query and a heatmap on a photo into which an indexed region was pasted, the crops, the
words of /context in every format and language, several photos of one claim, the 4xx reasons,
and a reload that sees the regions of a photo added meanwhile.

The tiny model's pooled patch tokens carry the pixels they pool (unlike its CLS token), so a
pasted region is found again (tests/integration/test_regions.py checks the retriever alone).
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import time

import pytest
from api_fakes import assert_error, jpeg
from fastapi.testclient import TestClient
from PIL import Image
from planted_regions import build_synthetic, is_or_holds, largest_single_regions, planted

from app.main import create_app
from app.settings import Settings

N_IMAGES = 12
SIZE = (320, 240)
IMAGE_SIZE = 224


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_dinov3, text_encoder, taxonomy):
    root = tmp_path_factory.mktemp("regions-api")
    encoder, _ = build_synthetic(
        root,
        tiny_dinov3,
        text_encoder,
        taxonomy,
        n=N_IMAGES,
        seed=3,
        size=SIZE,
        image_size=IMAGE_SIZE,
    )
    return root, encoder


def _serve(art, encoder, text_encoder, taxonomy, **overrides) -> TestClient:
    from app.serving.resources import assemble_resources
    from indexer.index.artifacts import load_artifacts

    resources = assemble_resources(
        load_artifacts(art), image_encoder=encoder, text_encoder=text_encoder, taxonomy=taxonomy
    )
    settings = Settings(_env_file=None, artifacts=art, reload_interval_s=0, **overrides)  # type: ignore[call-arg]
    client = TestClient(create_app(settings, resources=resources))
    client.__enter__()
    deadline = time.monotonic() + 30
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, client.get("/ready").json()
        time.sleep(0.02)
    return client


@pytest.fixture(scope="module")
def client(built, text_encoder, taxonomy):
    root, encoder = built
    c = _serve(root / "art", encoder, text_encoder, taxonomy)
    yield c
    c.__exit__(None, None, None)


@pytest.fixture(scope="module")
def artifacts(built):
    from indexer.index.artifacts import load_artifacts

    return load_artifacts(built[0] / "art")


def _planted(artifacts, region):
    """:func:`planted_regions.planted` as an upload: PNG bytes (lossless), the pasted box, the
    moved polygon in the API's syntax."""
    photo, box, polygon = planted(artifacts, region, SIZE, IMAGE_SIZE)
    out = io.BytesIO()
    photo.save(out, format="PNG")
    return out.getvalue(), box, " ".join(f"{x:.1f},{y:.1f}" for x, y in polygon)


def _largest(artifacts, n=3):
    return largest_single_regions(artifacts, n)


def _found(hit, region, artifacts) -> bool:
    return is_or_holds(hit["id"], hit["item"], hit["box"], region, artifacts)


def _post(client, path, photo, **data):
    files = {"image": ("q.png", photo, "image/png")}
    return client.post(path, files=files, data={k: str(v) for k, v in data.items()})


def _jpeg_size(data: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    return image.size


def test_a_region_query_returns_the_pasted_region_with_a_crop_of_it(client, artifacts):
    for region in _largest(artifacts):
        photo, _, polygon = _planted(artifacts, region)
        r = _post(client, "/retrieve", photo, k=3, region=polygon, region_k=4)
        assert r.status_code == 200, r.text
        body = r.json()
        answer = body["region"]
        assert len(answer["hits"]) == 4 and body["heatmap"] is None and body["photos"] is None
        top = answer["hits"][0]
        assert _found(top, region, artifacts), (region.id, top["id"])
        assert answer["position"]["en"].endswith("of the photo")
        assert answer["position"]["es"].endswith("de la foto")
        assert top["labels"] and top["labels"][0]["name_es"]
        assert len(body["hits"]) == 3  # the whole-image neighbours are still there
        crop = client.get(top["crop_url"])
        assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
        assert max(_jpeg_size(crop.content)) <= 256


def test_a_box_region_is_the_polygon_of_its_corners(client, artifacts):
    region = _largest(artifacts, 1)[0]
    photo, (bx, by, bw, bh), _ = _planted(artifacts, region)
    r = _post(client, "/retrieve", photo, region=f"{bx:.1f},{by:.1f},{bw:.1f},{bh:.1f}")
    assert r.status_code == 200, r.text
    assert r.json()["region"]["box"] == pytest.approx([bx, by, bw, bh], abs=0.1)
    assert r.json()["region"]["hits"][0]["item"] == artifacts.items[region.item].id


def test_the_heatmap_peaks_on_the_pasted_region_and_comes_with_an_overlay(client, artifacts):
    region = _largest(artifacts, 1)[0]
    photo, (bx, by, bw, bh), _ = _planted(artifacts, region)
    r = _post(client, "/retrieve", photo, explain="heatmap")
    assert r.status_code == 200, r.text
    heat = r.json()["heatmap"]
    assert len(heat["scores"]) == heat["rows"] and len(heat["scores"][0]) == heat["cols"]
    assert (heat["width"], heat["height"]) == SIZE
    px, py = heat["peak"]
    assert bx <= px <= bx + bw and by <= py <= by + bh
    assert heat["areas"] and heat["areas"][0]["neighbours"]
    assert heat["threshold"] is not None and heat["peak_hit"]["crop_url"].endswith("/crop")
    prefix = "data:image/png;base64,"
    assert heat["overlay_png"].startswith(prefix)
    overlay = Image.open(io.BytesIO(base64.b64decode(heat["overlay_png"][len(prefix) :])))
    assert overlay.mode == "RGBA" and overlay.size == (heat["cols"] * 8, heat["rows"] * 8)
    # the pasted place is drawn, a far grey corner is clear
    cell = 8
    col, row = int(px / SIZE[0] * heat["cols"]), int(py / SIZE[1] * heat["rows"])
    assert overlay.getpixel((col * cell + 4, row * cell + 4))[3] > 0


@pytest.mark.parametrize("language", ["en", "es"])
@pytest.mark.parametrize("fmt", ["markdown", "text", "json", "messages"])
def test_context_says_where_and_what_the_region_resembles(client, artifacts, fmt, language):
    region = _largest(artifacts, 1)[0]
    photo, _, polygon = _planted(artifacts, region)
    r = _post(client, "/context", photo, region=polygon, format=fmt, language=language, k=3)
    assert r.status_code == 200, r.text
    body = r.json()
    position = body["region"]["position"][language]
    if language == "en":
        assert "resembles" in body["context"] and "verified" in body["context"]
        assert "Damage regions" in body["context"]
    else:
        assert "se parece a" in body["context"] and "de casos verificados" in body["context"]
        assert "Zonas dañadas" in body["context"] and "verified" not in body["context"]
    assert position[:1].upper() + position[1:] in body["context"]
    if fmt == "json":
        sections = json.loads(body["context"])["sections"]
        assert sections and position in sections[0]["lines"][0].lower()
    if fmt == "messages":
        images = [p for p in body["messages"] if p["type"] == "image_url"]
        texts = " ".join(p["text"] for p in body["messages"] if p["type"] == "text")
        assert images and all(p["image_url"]["url"].startswith("data:image/jpeg") for p in images)
        assert region.id.split("#")[0] in texts  # the crops name their cases
        word = "Region" if language == "en" else "Zona"
        assert f"{word} {body['region']['hits'][0]['id']}" in texts


def test_the_region_crops_of_messages_stay_within_the_byte_budget(
    built, text_encoder, taxonomy, artifacts
):
    root, encoder = built
    region = _largest(artifacts, 1)[0]
    photo, _, polygon = _planted(artifacts, region)
    counts = []
    for budget in (600_000, 10_000):
        c = _serve(root / "art", encoder, text_encoder, taxonomy, region_crop_budget_bytes=budget)
        try:
            r = _post(c, "/context", photo, region=polygon, format="messages", region_k=5)
        finally:
            c.__exit__(None, None, None)
        assert r.status_code == 200, r.text
        urls = [p["image_url"]["url"] for p in r.json()["messages"] if p["type"] == "image_url"]
        assert sum(len(u) for u in urls) <= budget
        counts.append(len(urls))
    assert counts[0] == 5 and counts[1] < 5


def test_several_photos_of_a_claim_each_get_their_answer_and_pooled_evidence(client, artifacts):
    a, b = _largest(artifacts, 2)
    photo_a, _, polygon_a = _planted(artifacts, a)
    photo_b, _, _ = _planted(artifacts, b)
    files = [("image", ("a.png", photo_a, "image/png")), ("image", ("b.png", photo_b, "image/png"))]
    r = client.post(
        "/retrieve", files=files, data={"k": "3", "claim": "claim-7", "explain": "heatmap"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["claim"] == "claim-7" and [p["photo"] for p in body["photos"]] == [1, 2]
    assert all(p["heatmap"] and len(p["hits"]) == 3 for p in body["photos"])
    assert body["heatmap"] is None and body["label_set"] is None  # per photo
    assert len(body["hits"]) == 3 and [h["rank"] for h in body["hits"]] == [1, 2, 3]
    best = max(h["score"] for p in body["photos"] for h in p["hits"])
    assert body["hits"][0]["score"] == pytest.approx(best)
    assert body["evidence"]
    for e in body["evidence"]:
        assert set(e["photos"]) <= {1, 2} and e["photos"]
    # each photo's heatmap area votes count as its evidence
    voted = {
        (p["photo"], v["label"])
        for p in body["photos"]
        for area in p["heatmap"]["areas"]
        for v in area["votes"]
        if v["predicted"]
    }
    for photo, label in voted:
        assert photo in next(e["photos"] for e in body["evidence"] if e["label"] == label)

    files = [("image", ("a.png", photo_a, "image/png")), ("image", ("b.png", photo_b, "image/png"))]
    r = client.post(
        "/context", files=files, data={"language": "es", "region": polygon_a, "format": "text"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["photos"]) == 2 and body["evidence"]
    assert "Qué foto respalda cada etiqueta" in body["context"]
    assert "Foto 1: Zonas dañadas" in body["context"]


def test_one_photo_answers_stay_as_before(client):
    r = _post(client, "/retrieve", jpeg((128, 128, 128), (320, 240)), k=2)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["photos"] is None and body["evidence"] is None and body["region"] is None
    assert len(body["hits"]) == 2


@pytest.mark.parametrize(
    ("region", "reason"),
    [
        ("10,20,30", "neither a box"),
        ("10,20 30", "is not a point"),
        ("10,20 30,40", "at least 3 points"),
        ("a,b,c,d", "is not a number"),
        ("10,20,0,5", "no area"),
        ("300,200,40,40", "outside"),
        ("nan,1,2,3", "not a finite number"),
    ],
)
def test_a_bad_region_is_a_422_with_the_reason(client, region, reason):
    r = _post(client, "/retrieve", jpeg((128, 128, 128), (320, 240)), region=region)
    assert reason in assert_error(r, 422, "bad_parameter")["error"]


def test_a_heatmap_of_a_stored_item_asks_for_its_upload(client, artifacts):
    item = artifacts.items[0].id
    r = client.post("/retrieve", params={"item": item, "explain": "heatmap"})
    assert "needs an uploaded image" in assert_error(r, 422, "bad_parameter")["error"]


def test_crops_only_of_the_items_own_regions(client, artifacts):
    region = artifacts.regions.regions[0]
    owner = artifacts.items[region.item].id
    other = next(it.id for it in artifacts.items if it.id != owner)
    suffix = region.id.split("#", 1)[1]
    assert client.get(f"/items/{owner}/regions/{suffix}/crop").status_code == 200
    assert_error(client.get(f"/items/{other}/regions/{suffix}/crop?size=64"), 404, "not_found")
    assert_error(client.get(f"/items/{owner}/regions/zz9/crop"), 404, "not_found")
    small = client.get(f"/items/{owner}/regions/{suffix}/crop", params={"size": 48})
    assert max(_jpeg_size(small.content)) <= 48


def test_an_index_without_patch_regions_says_why(make_client):
    client = make_client()  # the fake colour encoder: no patch tokens, no region table
    r = client.post(
        "/retrieve",
        files={"image": ("q.jpg", jpeg(), "image/jpeg")},
        data={"region": "1,1,10,10"},
    )
    assert "patch tokens" in assert_error(r, 422, "bad_parameter")["error"]


def test_too_many_photos_are_refused(built, text_encoder, taxonomy):
    root, encoder = built
    c = _serve(root / "art", encoder, text_encoder, taxonomy, max_photos=2)
    try:
        files = [("image", (f"{i}.jpg", jpeg(), "image/jpeg")) for i in range(3)]
        r = c.post("/retrieve", files=files)
    finally:
        c.__exit__(None, None, None)
    assert r.status_code in (413, 422) and "at most 2" in r.json()["error"]


def test_a_reload_sees_the_regions_of_a_photo_added_meanwhile(
    built, tmp_path, text_encoder, taxonomy
):
    from indexer.build.pipeline import add_records, read_new_records, remove_items
    from indexer.index.artifacts import load_artifacts
    from indexer.readers.dataset import read_dataset
    from indexer.retrieval.opening import OpenedIndex

    root, encoder = built
    art = tmp_path / "art"
    shutil.copytree(root / "art", art)
    full = load_artifacts(art)
    region = _largest(full, 1)[0]
    gone = full.items[region.item]
    remove_items(art, [gone.id])
    c = _serve(art, encoder, text_encoder, taxonomy)
    try:
        photo, _, polygon = _planted(full, region)
        before = _post(c, "/retrieve", photo, region=polygon, region_k=20).json()["region"]
        assert gone.id not in {h["item"] for h in before["hits"]}

        record = next(
            r for r in read_dataset(root / "data", taxonomy=taxonomy).records if r.id == gone.id
        )
        shrunk = load_artifacts(art)
        opened = OpenedIndex(shrunk, encoder, text_encoder, taxonomy)
        add_records(opened, read_new_records(shrunk, [record], taxonomy), progress=False)
        c.app.state.service.reloader.request()
        deadline = time.monotonic() + 30
        while c.get("/info").json()["runtime"]["generation"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        after = _post(c, "/retrieve", photo, region=polygon, region_k=3).json()["region"]
        assert after["hits"][0]["item"] == gone.id
        assert c.get(after["hits"][0]["crop_url"]).status_code == 200
    finally:
        c.__exit__(None, None, None)


def test_the_light_client_sends_regions_and_photos_and_parses_them(client, artifacts):
    import httpx

    from visrag_client import VisragClient
    from visrag_client.schemas import HeatmapOut, RegionOut

    def forward(request: httpx.Request) -> httpx.Response:
        answer = client.request(
            request.method, str(request.url), content=request.read(), headers=request.headers
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    a, b = _largest(artifacts, 2)
    photo_a, (bx, by, bw, bh), polygon = _planted(artifacts, a)
    photo_b, _, _ = _planted(artifacts, b)
    with VisragClient("http://testserver", transport=httpx.MockTransport(forward)) as c:
        one = c.retrieve(photo_a, region=polygon, explain="heatmap", region_k=2)
        assert isinstance(one.region, RegionOut) and isinstance(one.heatmap, HeatmapOut)
        assert len(one.region.hits) == 2 and _found(one.region.hits[0].model_dump(), a, artifacts)
        px, py = one.heatmap.peak
        assert bx <= px <= bx + bw and by <= py <= by + bh
        claim = c.context([photo_a, photo_b], claim="c-1", language="es", format="messages")
        assert claim.claim == "c-1" and claim.photos is not None and len(claim.photos) == 2
        assert claim.evidence is not None and claim.messages
        assert one.photos is None and one.evidence is None
