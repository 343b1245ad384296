"""The demo page in headless Chromium against a real in-process server (tiny DINOv3, FAISS)."""

from __future__ import annotations

import os
import shutil
import socket
import threading

import pytest
import uvicorn
from browser import CHROMIUM_ARGS, chromium_path
from service_index import build_small_index

from bench.server import wait_ready

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory, tiny_dinov3, text_encoder, taxonomy):
    from app.main import create_app
    from app.settings import Settings

    root = build_small_index(tmp_path_factory.mktemp("demo"), tiny_dinov3, text_encoder, taxonomy)
    settings = Settings(
        _env_file=None, artifacts=root / "art", device="cpu", label_estimate_threshold=0.0
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{port}"
        if not wait_ready(base, 60, interval=0.1):
            pytest.fail("demo server not ready in 60 s")
        try:
            yield base, root
        finally:
            server.should_exit = True
            thread.join(20)


def test_upload_shows_neighbours_votes_estimates_and_context(base_url, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    base, root = base_url
    query = sorted((root / "data").glob("*.jpg"))[2]
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(base + "/")
            page.wait_for_selector("#status.ok", timeout=10_000)
            page.set_input_files("#image", str(query))
            page.fill("#k", "6")
            page.select_option("#mode", "probe")
            page.click("#submit")
            page.wait_for_function("document.querySelectorAll('#neighbours .card').length === 6")
            page.wait_for_function(
                "Array.from(document.querySelectorAll('#neighbours img'))"
                ".every(i => i.complete && i.naturalWidth > 0)",
                timeout=10_000,
            )
            cards = page.locator("#neighbours .card")
            first = cards.nth(0).inner_text()
            assert "#1" in first and "%" in first
            assert page.locator("#votes li").count() >= 1
            assert "neighbours, weighted" in page.locator("#votes").inner_text()
            assert "likely: " in page.locator("#estimates").inner_text()
            label_set = page.locator("#label-set").inner_text()
            assert "covers all true labels of photos like the indexed cases" in label_set
            assert page.locator("#novelty").is_hidden()  # a catalogue photo is close to the index
            assert page.locator("#timing").inner_text().startswith("probe")
            context = page.locator("#context").inner_text()
            assert context.startswith("### Similar verified cases")
            assert page.locator("#error").is_hidden()
            shot = tmp_path / "demo.png"
            page.screenshot(path=str(shot), full_page=True)
            if os.environ.get("VISRAG_KEEP_SCREENSHOT"):
                shutil.copy(shot, os.environ["VISRAG_KEEP_SCREENSHOT"])
        finally:
            browser.close()
    assert errors == []
    assert shot.stat().st_size > 10_000


def test_where_is_the_damage_draws_the_overlay_boxes_and_region_crops(base_url, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    base, root = base_url
    # an indexed photo with defects: its own regions are in the index, so areas are found
    from indexer.index.artifacts import load_artifacts

    artifacts = load_artifacts(root / "art")
    item = max(artifacts.items, key=lambda it: len(it.defects.get("shapes", [])))
    query = artifacts.image_file(item)
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(base + "/")
            page.wait_for_selector("#status.ok", timeout=10_000)
            page.set_input_files("#image", str(query))
            page.check("#explain")
            page.click("#submit")
            page.wait_for_selector("#where:not([hidden])", timeout=20_000)
            page.wait_for_function(
                "(() => { const o = document.getElementById('where-overlay');"
                " return o && o.complete && o.naturalWidth > 0; })()"
            )
            assert page.locator("#where-frame rect.area-box").count() >= 1
            page.wait_for_function(
                "document.querySelectorAll('#region-crops img').length > 0 && "
                "Array.from(document.querySelectorAll('#region-crops img'))"
                ".every(i => i.complete && i.naturalWidth > 0)",
                timeout=10_000,
            )
            assert "of the photo" in page.locator("#where-areas").inner_text()
            # the overlay covers the photo exactly: same drawn box
            photo = page.locator("#where-photo").bounding_box()
            overlay = page.locator("#where-overlay").bounding_box()
            assert photo and overlay
            assert abs(photo["width"] - overlay["width"]) < 2
            assert abs(photo["height"] - overlay["height"]) < 2
            assert "Damage regions" in page.locator("#context").inner_text()
            shot = tmp_path / "where.png"
            page.locator("#where").screenshot(path=str(shot))
            if os.environ.get("VISRAG_KEEP_SCREENSHOT"):
                shutil.copy(shot, os.environ["VISRAG_KEEP_SCREENSHOT"] + ".where.png")
        finally:
            browser.close()
    assert errors == []
    assert shot.stat().st_size > 10_000
