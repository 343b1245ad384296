"""`visrag demo` as a user runs it (a subprocess on a free port, tiny random DINOv3): the README's
curl examples run as written against it, and its page works in headless Chromium."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser import CHROMIUM_ARGS, chromium_path

from bench.server import wait_ready

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(base URL, the directory `visrag demo` was started in)."""
    cwd = tmp_path_factory.mktemp("user")
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VISRAG_DEVICE": "cpu"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "client")])
    command = [sys.executable, "-m", "app.cli", "demo", "--tiny", "--n", "60"]
    log = (cwd / "demo.log").open("w")
    proc = subprocess.Popen(
        [*command, "--port", str(port)], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        if not wait_ready(base, 240, proc=proc, interval=0.3):
            pytest.fail("visrag demo not ready:\n" + (cwd / "demo.log").read_text()[-3000:])
        yield base, cwd
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _readme_curls(port: int) -> list[str]:
    """The HTTP API section's curl commands, continuation lines joined, on the demo's port."""
    text = (REPO / "README.md").read_text("utf-8")
    section = text[text.index("## HTTP API") :]
    block = section[section.index("```bash") + 7 : section.index("```\n", 8)]
    commands = re.sub(r"\\\n\s*", "", block)
    lines = [ln for ln in commands.splitlines() if ln.startswith("curl ")]
    return [ln.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for ln in lines]


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_readme_curl_examples_run_as_written_against_the_demo(demo):
    base, cwd = demo
    commands = _readme_curls(int(base.rsplit(":", 1)[1]))
    assert len(commands) >= 8 and all("photo.jpg" not in c for c in commands)
    for command in commands:
        done = subprocess.run(command, shell=True, cwd=cwd, capture_output=True, text=True)
        assert done.returncode == 0, (command, done.stderr)
        assert done.stdout.strip(), command
    assert "Casos verificados similares" in next(
        subprocess.run(c, shell=True, cwd=cwd, capture_output=True, text=True).stdout
        for c in commands
        if "language=es" in c
    )


def test_samples_and_outlines_are_served_by_listed_name_and_id_only(demo):
    base, cwd = demo
    listed = httpx.get(f"{base}/demo/samples").json()
    assert [s["file"] for s in listed] == [f"{i:02d}.jpg" for i in range(1, 9)]
    first = httpx.get(f"{base}/{listed[0]['url']}")
    assert first.headers["content-type"] == "image/jpeg"
    assert first.content == (cwd / "visrag-demo" / "samples" / "01.jpg").read_bytes()
    for name in ("..%2Fdemo.json", "samples.json", "99.jpg"):
        assert httpx.get(f"{base}/demo/samples/{name}").status_code == 404, name

    hits = httpx.post(f"{base}/retrieve", files={"image": first.content}, data={"k": "10"}).json()[
        "hits"
    ]
    damaged = next(h for h in hits if h["labels"])
    outline = httpx.get(f"{base}/items/{damaged['id']}/annotation").json()
    assert outline["size"] == [640, 480]
    assert {s["label"] for s in outline["shapes"]} == {lb["id"] for lb in damaged["labels"]}
    assert httpx.get(f"{base}/items/no-such-item/annotation").status_code == 404


@contextlib.contextmanager
def demo_page(base: str, width: int) -> Iterator[Any]:
    """The demo page, ready, in headless Chromium ``width`` px wide; no page error allowed."""
    sync_api = pytest.importorskip("playwright.sync_api")
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(base + "/")
            page.wait_for_selector("#status.ok", timeout=20_000)
            yield page
        finally:
            browser.close()
    assert errors == []


@pytest.mark.browser
def test_a_sample_click_answers_with_distinct_scores_and_then_the_true_labels(demo):
    with demo_page(demo[0], 1280) as page:
        assert "Not a real model" in page.locator("#warning").inner_text()
        strip = page.locator("#sample-strip button")
        strip.first.wait_for(timeout=10_000)
        assert strip.count() == 8
        assert page.locator("#truth").is_hidden()  # not before the answer

        strip.nth(1).click()
        page.wait_for_function("document.querySelectorAll('#neighbours .card').length === 5")
        scores = page.locator("#neighbours .cos").all_inner_texts()
        assert len(set(scores)) > 1, scores  # not every neighbour at cos 1.000
        truth = page.locator("#truth").inner_text()
        assert truth.startswith("True labels of the sample: ")


@pytest.mark.browser
def test_docs_render_with_the_network_cut(demo):
    sync_api = pytest.importorskip("playwright.sync_api")
    base, _ = demo
    outside: list[str] = []

    def loopback_only(route):
        if route.request.url.startswith(base):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", loopback_only)
            page.goto(base + "/docs")
            page.wait_for_selector(".opblock-summary-path", timeout=20_000)
            paths = page.locator(".opblock-summary-path").all_inner_texts()
            assert "/retrieve" in paths and "/context" in paths
            assert page.locator(".swagger-ui .title").inner_text().startswith("visrag")
        finally:
            browser.close()
    assert outside == []


@pytest.mark.browser
def test_the_page_on_a_phone_in_spanish_outlines_damage_and_clears_on_error(demo):
    with demo_page(demo[0], 390) as page:
        page.select_option("#language", "es")
        assert page.locator("#submit").inner_text() == "Buscar casos similares"
        assert page.locator("html").get_attribute("lang") == "es"
        assert page.get_attribute("#labels_any", "placeholder").startswith("filtro opcional")
        assert "No es un modelo real" in page.locator("#warning").inner_text()
        page.fill("#k", "8")
        page.locator("#sample-strip button").first.click()
        page.wait_for_function("document.querySelectorAll('#neighbours .card').length === 8")
        page.wait_for_selector("#neighbours .thumb svg polygon", timeout=10_000)
        assert page.locator("#truth").inner_text().startswith("Etiquetas verdaderas")
        assert "Casos verificados similares" in page.locator("#context").inner_text()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways on a phone: {width} px"

        card = page.locator("#neighbours .thumb:has(svg)").first
        card.click()
        page.wait_for_selector("#zoom[open] .frame img", timeout=5_000)
        assert page.locator("#zoom .frame svg polygon").count() >= 1
        page.locator("#zoom button").click()

        page.select_option("#mode", "hybrid")  # without a caption: the service says 422
        page.click("#submit")
        page.wait_for_selector("#error:not([hidden])", timeout=10_000)
        assert "422" in page.locator("#error").inner_text()
        assert page.locator("#neighbours .card").count() == 0  # the old answer is gone
        assert page.locator("#context").inner_text() == ""
