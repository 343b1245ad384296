"""The DINOv3 encoder on the tiny random checkpoint, through the real loading path."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from pictures import picture
from PIL import Image

from models import device
from models.errors import ModelNotAvailableError
from models.image_encoder import load_image_encoder

SMALL = 64  # pixels on the longer side: 4 patches, keeps every forward pass cheap


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def pictures() -> list[Image.Image]:
    sizes = [(320, 240), (240, 320), (320, 240), (200, 200), (240, 320), (320, 240)]
    return [picture(w, h, seed) for seed, (w, h) in enumerate(sizes)]


def test_tiny_checkpoint_loads_offline_with_its_preprocessing(tiny_dinov3: Path):
    encoder = load_image_encoder(tiny_dinov3, device="cpu", dtype="fp32")
    info = encoder.info()
    assert info["model_id"] == str(tiny_dinov3.resolve())
    assert info["revision"] is None
    assert (info["dtype"], info["device"], info["pooling"], info["dim"]) == (
        "fp32",
        "cpu",
        "cls",
        32,
    )
    assert info["preprocessing"] == {
        "resize": "aspect_preserving_longer_side",
        "image_size": 448,
        "patch_size": 16,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "interpolation": "bicubic_antialias",
    }
    assert encoder.preprocess(picture(640, 480, 0)).shape == (3, 336, 448)


def test_mean_std_come_from_the_checkpoint(tiny_dinov3: Path, tmp_path: Path, caplog):
    custom = shutil.copytree(tiny_dinov3, tmp_path / "custom")
    config = json.loads((custom / "preprocessor_config.json").read_text())
    config["image_mean"], config["image_std"] = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]
    (custom / "preprocessor_config.json").write_text(json.dumps(config))
    encoder = load_image_encoder(custom, device="cpu")
    assert (encoder.mean, encoder.std) == ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert encoder.preprocess(Image.new("RGB", (32, 32), (255, 255, 255))).max() == pytest.approx(2)

    (custom / "preprocessor_config.json").unlink()
    with caplog.at_level(logging.WARNING, logger="models.image_encoder"):
        fallback = load_image_encoder(custom, device="cpu")
    assert fallback.mean == (0.485, 0.456, 0.406)
    assert "ImageNet" in caplog.text


def test_vectors_are_unit_deterministic_and_input_dependent(tiny_dinov3: Path, pictures):
    encoder = load_image_encoder(tiny_dinov3, device="cpu", image_size=SMALL)
    first = encoder.encode(pictures[:3])
    assert first.shape == (3, 32) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    again = load_image_encoder(tiny_dinov3, device="cpu", image_size=SMALL).encode(pictures[:3])
    np.testing.assert_array_equal(first, again)
    assert float(first[0] @ first[2]) < 0.9999  # different pictures, different vectors


def test_empty_input_gives_an_empty_matrix(tiny_dinov3: Path):
    encoder = load_image_encoder(tiny_dinov3, device="cpu", pooling="cls+mean")
    assert encoder.encode([]).shape == (0, 64)


def test_bucketing_keeps_input_order_and_matches_one_by_one(tiny_dinov3: Path, pictures):
    encoder = load_image_encoder(tiny_dinov3, device="cpu", dtype="fp32", image_size=SMALL)
    arrays = [encoder.preprocess(p) for p in pictures]
    batch_shapes = []
    forward = encoder.forward

    def spy(pixels: torch.Tensor) -> torch.Tensor:
        batch_shapes.append(tuple(pixels.shape))
        return forward(pixels)

    encoder.forward = spy  # type: ignore[method-assign]
    batched = encoder.encode_preprocessed(arrays, batch_size=2)
    # 3 landscape (2 + 1), 2 portrait, 1 square: 4 passes, each of one shape.
    assert sorted(s[0] for s in batch_shapes) == [1, 1, 2, 2]
    one_by_one = np.concatenate([encoder.encode_preprocessed([a]) for a in arrays])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


def _manual(encoder, image: Image.Image) -> torch.Tensor:
    pixels = torch.from_numpy(encoder.preprocess(image))[None]
    with torch.inference_mode():
        return encoder.model(pixel_values=pixels).last_hidden_state[0]


def test_cls_mean_excludes_register_tokens(tiny_dinov3: Path, pictures):
    encoder = load_image_encoder(
        tiny_dinov3, device="cpu", dtype="fp32", image_size=SMALL, pooling="cls+mean"
    )
    assert encoder.dim == 64 and encoder.num_register_tokens == 4
    tokens = _manual(encoder, pictures[0])  # [CLS, 4 registers, 12 patches]
    assert tokens.shape[0] == 1 + 4 + (SMALL // 16) * (48 // 16)

    def unit(v: torch.Tensor) -> np.ndarray:
        return torch.nn.functional.normalize(v, dim=0).numpy()

    expected = unit(torch.cat([tokens[0], tokens[5:].mean(0)]))
    with_registers = unit(torch.cat([tokens[0], tokens[1:].mean(0)]))
    got = encoder.encode(pictures[:1])[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert not np.allclose(got, with_registers, atol=1e-3)


def test_cls_and_gem_pooling_match_manual_computation(tiny_dinov3: Path, pictures):
    cls = load_image_encoder(tiny_dinov3, device="cpu", dtype="fp32", image_size=SMALL)
    tokens = _manual(cls, pictures[1])
    want = torch.nn.functional.normalize(tokens[0], dim=0).numpy()
    np.testing.assert_allclose(cls.encode(pictures[1:2])[0], want, atol=1e-5)

    gem = load_image_encoder(
        tiny_dinov3, device="cpu", dtype="fp32", image_size=SMALL, pooling="gem"
    )
    pooled = tokens[5:].clamp(min=1e-6).pow(3).mean(0).pow(1 / 3)
    want = torch.nn.functional.normalize(pooled, dim=0).numpy()
    np.testing.assert_allclose(gem.encode(pictures[1:2])[0], want, atol=1e-5)


NATIVE_BF16 = device.cpu_supports_bf16()


@pytest.mark.skipif(not NATIVE_BF16, reason="this CPU has no native bf16 (AVX512-BF16/AMX)")
@pytest.mark.parametrize("pooling", ["cls", "cls+mean", "gem"])
def test_bf16_weights_stay_close_to_fp32(tiny_dinov3: Path, pictures, pooling):
    bf16 = load_image_encoder(
        tiny_dinov3, device="cpu", dtype="bf16", image_size=SMALL, pooling=pooling
    )
    info = bf16.info()
    assert (info["dtype"], info["weights_dtype"], info["autocast"]) == ("bf16", "bf16", False)
    fp32 = load_image_encoder(
        tiny_dinov3, device="cpu", dtype="fp32", image_size=SMALL, pooling=pooling
    )
    got = bf16.encode(pictures)
    assert got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(got * fp32.encode(pictures), axis=1)
    assert cosines.min() >= 0.999


@pytest.mark.parametrize("native", [True, False])
def test_auto_dtype_is_bf16_only_where_the_cpu_has_it(tiny_dinov3: Path, monkeypatch, native):
    monkeypatch.setattr(device, "cpu_supports_bf16", lambda: native)
    for dtype in (None, "auto"):
        info = load_image_encoder(tiny_dinov3, device="cpu", dtype=dtype).info()
        want = "bf16" if native else "fp32"
        assert (info["dtype"], info["weights_dtype"], info["autocast"]) == (want, want, False)


def test_bf16_without_native_cpu_support_falls_back_to_fp32(tiny_dinov3: Path, monkeypatch, caplog):
    monkeypatch.setattr(device, "cpu_supports_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="models.image_encoder"):
        encoder = load_image_encoder(tiny_dinov3, device="cpu", dtype="bf16")
    assert (encoder.dtype, encoder.autocast, encoder.info()["dtype"]) == ("fp32", False, "fp32")
    assert "native bf16" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dtype": "fp16", "device": "cpu"}, "fp16 needs a GPU"),
        ({"dtype": "int8", "device": "cpu"}, "dtype must be one of"),
        ({"pooling": "max", "device": "cpu"}, "pooling must be one of"),
    ],
)
def test_bad_options_are_value_errors(tiny_dinov3: Path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_image_encoder(tiny_dinov3, **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_cuda_is_a_clear_error(tiny_dinov3: Path):
    with pytest.raises(ValueError, match="CUDA is not available"):
        load_image_encoder(tiny_dinov3, device="cuda")


def test_missing_directory_names_it_and_how_to_provide_weights(tmp_path: Path):
    missing = tmp_path / "no-such-checkpoint"
    with pytest.raises(ModelNotAvailableError) as info:
        load_image_encoder(missing)
    message = str(info.value)
    assert f"local folder not found: {missing}" in message and "hf download" in message


def test_directory_without_config_is_not_a_checkpoint(tmp_path: Path):
    with pytest.raises(ModelNotAvailableError, match="no config.json"):
        load_image_encoder(tmp_path)


def test_unknown_hub_id_offline_fails_with_one_helpful_error():
    model = "facebook/dinov3-does-not-exist"
    with pytest.raises(ModelNotAvailableError) as info:
        load_image_encoder(model, device="cpu")
    message = str(info.value)
    for needed in (model, "HF_HUB_OFFLINE=1", "HF_TOKEN", "licence", f"hf download {model}"):
        assert needed in message


def test_a_non_dinov3_checkpoint_is_refused(tmp_path: Path):
    from transformers import BertConfig, BertModel

    BertModel(
        BertConfig(
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=16,
            vocab_size=50,
        )
    ).save_pretrained(tmp_path)
    with pytest.raises(ModelNotAvailableError, match="'bert' model, expected one of"):
        load_image_encoder(tmp_path, device="cpu")


def test_tiny_factory_is_deterministic(tmp_path: Path):
    from models.testing import make_tiny_dinov3

    a = load_image_encoder(make_tiny_dinov3(tmp_path / "a", seed=3), device="cpu", image_size=SMALL)
    b = load_image_encoder(make_tiny_dinov3(tmp_path / "b", seed=3), device="cpu", image_size=SMALL)
    c = load_image_encoder(make_tiny_dinov3(tmp_path / "c", seed=4), device="cpu", image_size=SMALL)
    image = [picture(100, 80, 7)]
    np.testing.assert_array_equal(a.encode(image), b.encode(image))
    assert not np.allclose(a.encode(image), c.encode(image))
