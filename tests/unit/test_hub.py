"""Where weights come from, failing fast: missing local folders and a hub out of reach."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from models import hub, image_encoder
from models.errors import ModelNotAvailableError
from models.image_encoder import load_image_encoder


@pytest.fixture
def no_hub_calls(monkeypatch):
    """A path-like model must be refused before any network probe or hub request."""

    def refuse(*args, **kwargs):
        raise AssertionError("the hub was consulted for a local path")

    monkeypatch.setattr(hub, "hub_reachable", refuse)
    monkeypatch.setattr(image_encoder, "load_model", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


@pytest.mark.parametrize(
    "model", ["weights/dinov3-vits16-pretrain-lvd1689m", "./weights/x", "a/b/c", "just-a-name"]
)
def test_a_missing_local_folder_is_named_and_suggests_a_download_and_tiny(
    model: str, tmp_path: Path, monkeypatch, no_hub_calls
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights").mkdir()  # the README's layout: the parent exists, the checkpoint not
    with pytest.raises(ModelNotAvailableError) as info:
        load_image_encoder(model, device="cpu")
    message = str(info.value)
    assert f"local folder not found: {(tmp_path / model).absolute()}" in message
    assert f"hf download {hub.DEFAULT_IMAGE_MODEL} --local-dir {model}" in message
    assert "visrag model tiny DIR" in message and "--image-model DIR" in message
    assert "huggingface.co/weights" not in message  # not sent to huggingface.co/<a path>
    assert "not in the local Hugging Face cache" not in message
    short_lines(message, str((tmp_path / model).absolute()), model, hub.DEFAULT_IMAGE_MODEL)


def short_lines(message: str, *names: str) -> None:
    """A few short lines a user reads at a glance, not one 700-character paragraph."""
    lines = message.splitlines()
    for name in sorted(names, key=len, reverse=True):  # the user's own paths and ids aside
        lines = [line.replace(name, "") for line in lines]
    assert len(lines) <= 5 and max(len(line) for line in lines) <= 80, message


def test_an_owner_name_id_is_a_hub_id_when_no_such_parent_folder_exists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert not hub.is_path_like("facebook/dinov3-vits16-pretrain-lvd1689m")
    (tmp_path / "facebook").mkdir()
    assert hub.is_path_like("facebook/dinov3-vits16-pretrain-lvd1689m")


def test_without_network_a_hub_id_gets_one_cache_only_try(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=hub.PROBE_TIMEOUT_S: False)
    model = "facebook/dinov3-does-not-exist"
    with pytest.raises(ModelNotAvailableError) as info:
        load_image_encoder(model, device="cpu")
    message = str(info.value)
    first = message.splitlines()[0]
    assert "hub id not in the local Hugging Face cache (no network)" in first
    assert f"nor a local folder: {Path(model).absolute()}" in message  # it may be a typo'd path
    assert f"hf download {model}\n" in message and "visrag model tiny DIR" in message
    short_lines(message, str(Path(model).absolute()), model)


def test_with_network_the_hub_is_used_as_before(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=hub.PROBE_TIMEOUT_S: True)
    assert hub.hub_kwargs_for("main", "tok") == {
        "revision": "main",
        "token": "tok",
        "local_files_only": False,
    }


def test_the_probe_reports_what_a_connection_finds(monkeypatch):
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    port = listening.getsockname()[1]
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"https://127.0.0.1:{port}")
    assert hub.hub_reachable(timeout=1.0)
    listening.close()
    assert not hub.hub_reachable(timeout=1.0)  # nothing listens there any more


def test_the_probe_goes_to_the_proxy_when_one_is_set(monkeypatch):
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{listening.getsockname()[1]}")
    try:
        assert hub.hub_reachable(timeout=1.0)
    finally:
        listening.close()


def test_the_tiny_random_checkpoint_says_its_weights_are_random(tiny_dinov3: Path):
    encoder = load_image_encoder(tiny_dinov3, device="cpu", image_size=64)
    assert encoder.info()["random_init"] is True
