"""Backbones beyond DINOv3: tiny random DINOv2, SigLIP 2 (NaFlex) and SigLIP (fixed size)
checkpoints saved with ``save_pretrained`` and loaded through the one ``load_image_encoder``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pictures import picture
from vector_index import KeywordTextEncoder

from models.errors import ModelNotAvailableError
from models.image_encoder import load_image_encoder
from models.testing import make_tiny, make_tiny_dinov2

KINDS = ("dinov3", "dinov2", "siglip2", "siglip")
FAMILY_TYPE = {
    "dinov3": "dinov3_vit",
    "dinov2": "dinov2",
    "siglip2": "siglip2_vision_model",
    "siglip": "siglip_vision_model",
}


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("backbones")
    return {kind: make_tiny(kind, root / kind) for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_every_backbone_gives_unit_vectors_of_its_declared_dim(checkpoints, kind):
    encoder = load_image_encoder(checkpoints[kind], device="cpu", dtype="fp32", image_size=64)
    images = [picture(320, 240, 0), picture(240, 320, 1), picture(320, 240, 2)]
    vectors = encoder.encode(images, batch_size=2)
    assert vectors.shape == (3, encoder.dim) and encoder.dim == 32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[2])  # the content matters
    one_by_one = np.vstack([encoder.encode([im]) for im in images])
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-5)
    info = encoder.info()
    assert (info["family"], info["model_type"]) == (kind, FAMILY_TYPE[kind])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("pooling", ["mean", "gem"])
def test_patch_token_poolings_work_on_every_backbone(checkpoints, kind, pooling):
    encoder = load_image_encoder(checkpoints[kind], device="cpu", image_size=64, pooling=pooling)
    vector = encoder.encode([picture(200, 150, 3)])
    assert vector.shape == (1, 32)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_default_pooling_is_the_backbones(checkpoints):
    poolings = {k: load_image_encoder(checkpoints[k], device="cpu").pooling for k in KINDS}
    assert poolings == {"dinov3": "cls", "dinov2": "cls", "siglip2": "pooler", "siglip": "pooler"}


@pytest.mark.parametrize("kind", ["siglip2", "siglip"])
@pytest.mark.parametrize("pooling", ["cls", "cls+mean"])
def test_siglip_has_no_cls_and_says_which_poolings_it_has(checkpoints, kind, pooling):
    with pytest.raises(ValueError, match="no CLS token") as err:
        load_image_encoder(checkpoints[kind], device="cpu", pooling=pooling)
    assert "('pooler', 'mean', 'gem')" in str(err.value)


def test_dino_has_no_pooler_pooling(checkpoints):
    with pytest.raises(ValueError, match="pooling must be one of"):
        load_image_encoder(checkpoints["dinov2"], device="cpu", pooling="pooler")


@pytest.mark.parametrize("kind", ["dinov3", "dinov2", "siglip2"])
def test_aspect_preserving_backbones_keep_the_aspect_in_whole_patches(checkpoints, kind):
    encoder = load_image_encoder(checkpoints[kind], device="cpu", image_size=64)
    patch = encoder.patch_size
    landscape = encoder.preprocess(picture(320, 240, 0)).shape
    portrait = encoder.preprocess(picture(240, 320, 0)).shape
    assert landscape[1] < landscape[2] and portrait == (3, landscape[2], landscape[1])
    assert landscape[1] % patch == 0 and landscape[2] % patch == 0
    assert encoder.info()["preprocessing"]["resize"] == "aspect_preserving_longer_side"


def test_fixed_size_siglip_takes_its_own_square_size(checkpoints):
    encoder = load_image_encoder(checkpoints["siglip"], device="cpu")
    assert encoder.image_size == 64  # the checkpoint's vision_config.image_size, not 448
    for size in [(320, 240), (240, 320), (50, 50)]:
        assert encoder.preprocess(picture(*size, 0)).shape == (3, 64, 64)
    assert encoder.info()["preprocessing"]["resize"] == "square_stretch"
    larger = load_image_encoder(checkpoints["siglip"], device="cpu", image_size=96)
    vector = larger.encode([picture(320, 240, 0)])  # position embeddings interpolated
    assert larger.preprocess(picture(320, 240, 0)).shape == (3, 96, 96)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_mean_std_come_from_each_checkpoint(checkpoints):
    siglip = load_image_encoder(checkpoints["siglip2"], device="cpu")
    dinov2 = load_image_encoder(checkpoints["dinov2"], device="cpu")
    assert (siglip.mean, siglip.std) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert dinov2.mean == (0.485, 0.456, 0.406)


def test_dinov2_with_registers_mean_excludes_cls_and_registers(tmp_path: Path):
    path = make_tiny_dinov2(tmp_path / "reg", registers=4)
    encoder = load_image_encoder(path, device="cpu", dtype="fp32", image_size=56, pooling="mean")
    assert encoder.info()["model_type"] == "dinov2_with_registers"
    pixels = encoder.preprocess(picture(320, 240, 5))
    with torch.inference_mode():
        tokens = encoder.model(pixel_values=torch.from_numpy(pixels)[None]).last_hidden_state[0]
    assert tokens.shape[0] == 1 + 4 + (pixels.shape[1] // 14) * (pixels.shape[2] // 14)
    expected = torch.nn.functional.normalize(tokens[5:].mean(0), dim=-1).numpy()
    np.testing.assert_allclose(encoder.encode_preprocessed([pixels])[0], expected, atol=1e-5)


def test_siglip2_patch_rows_match_the_transformers_processor(checkpoints):
    from transformers.models.siglip2.image_processing_pil_siglip2 import (
        convert_image_to_patches,
    )

    from models.backbones import to_patches

    pixels = np.random.default_rng(0).random((3, 48, 64)).astype(np.float32)
    ours = to_patches(torch.from_numpy(pixels)[None], 16)[0].numpy()
    np.testing.assert_array_equal(ours, convert_image_to_patches(pixels, 16))


def test_siglip2_pooler_is_the_vision_towers_own_output(checkpoints):
    from transformers import Siglip2Model

    from models.backbones import to_patches

    encoder = load_image_encoder(checkpoints["siglip2"], device="cpu", dtype="fp32", image_size=64)
    full = Siglip2Model.from_pretrained(checkpoints["siglip2"]).eval()
    pixels = torch.from_numpy(encoder.preprocess(picture(320, 240, 4)))[None]
    rows = to_patches(pixels, 16)
    with torch.inference_mode():
        features = full.get_image_features(
            pixel_values=rows,
            pixel_attention_mask=torch.ones(rows.shape[:2], dtype=torch.int32),
            spatial_shapes=torch.tensor([[pixels.shape[2] // 16, pixels.shape[3] // 16]]),
        )
    features = getattr(features, "pooler_output", features)
    expected = torch.nn.functional.normalize(features, dim=-1)[0].numpy()
    ours = encoder.encode_preprocessed([pixels[0].numpy()])[0]
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_an_unknown_model_type_names_the_supported_ones(tmp_path: Path):
    from transformers import BertConfig, BertModel

    config = BertConfig(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        vocab_size=50,
    )
    BertModel(config).save_pretrained(tmp_path)
    with pytest.raises(ModelNotAvailableError, match="'bert' model, expected one of") as err:
        load_image_encoder(tmp_path, device="cpu")
    assert "dinov2" in str(err.value) and "siglip2" in str(err.value)


def test_an_index_records_its_backbone_and_refuses_another(checkpoints, tmp_path: Path):
    from indexer.build.pipeline import build_index
    from indexer.errors import ManifestMismatchError
    from indexer.index.artifacts import read_manifest
    from indexer.retrieval.opening import Overrides, open_index
    from indexer.synthetic.generator import generate_dataset
    from models.taxonomy import load_taxonomy

    taxonomy = load_taxonomy()
    generate_dataset(tmp_path / "data", 6, seed=0, image_size=(96, 72))
    encoder = load_image_encoder(checkpoints["siglip2"], device="cpu", image_size=64)
    build_index(
        tmp_path / "data",
        tmp_path / "art",
        image_encoder=encoder,
        text_encoder=KeywordTextEncoder(),
        taxonomy=taxonomy,
        progress=False,
    )
    recorded = read_manifest(tmp_path / "art").image_model
    assert (recorded.family, recorded.model_type) == ("siglip2", "siglip2_vision_model")
    assert recorded.pooling == "pooler" and recorded.preprocessing is not None
    assert recorded.preprocessing.mean == (0.5, 0.5, 0.5)

    same = Overrides(device="cpu", image_model=str(checkpoints["siglip2"]), taxonomy=taxonomy)
    opened = open_index(tmp_path / "art", same, text_encoder=KeywordTextEncoder())
    assert opened.image_encoder is not None and opened.image_encoder.pooling == "pooler"

    dinov2 = load_image_encoder(checkpoints["dinov2"], device="cpu", image_size=64)
    with pytest.raises(ManifestMismatchError) as err:
        open_index(
            tmp_path / "art",
            Overrides(taxonomy=taxonomy),
            image_encoder=dinov2,
            text_encoder=KeywordTextEncoder(),
        )
    assert err.value.field == "image_model.model_type"
    assert "siglip2_vision_model" in str(err.value) and "'dinov2'" in str(err.value)

    # Loading the recorded encoder from another backbone's checkpoint (the service's path):
    # DINOv2 cannot pool like SigLIP's head, and the error names the manifest field.
    other = Overrides(device="cpu", image_model=str(checkpoints["dinov2"]), taxonomy=taxonomy)
    with pytest.raises(ManifestMismatchError) as err:
        open_index(tmp_path / "art", other, text_encoder=KeywordTextEncoder())
    assert err.value.field == "image_model.pooling" and "siglip2_vision_model" in str(err.value)


def test_contrast_pooling_follows_the_defect_not_the_body_colour():
    from models.backbones import pool

    panel = torch.zeros(1, 6, 2)  # 1 prefix token + 5 patch tokens, 2 channels
    panel[0, 0] = 9.0  # the CLS/prefix token never counts
    dented = panel.clone()
    dented[0, 3] = torch.tensor([4.0, -2.0])  # one patch stands out
    repainted = dented + torch.tensor([50.0, -30.0])  # another body colour, same defect

    vector = pool("contrast", dented, None, prefix=1)
    assert vector.tolist() == [[4.0, 0.0, 0.0, 2.0]]  # excess above, then below the median
    assert torch.equal(pool("contrast", repainted, None, prefix=1), vector)
    assert pool("contrast", panel, None, prefix=1).abs().sum() == 0  # bare panel: nothing


def test_contrast_pooling_doubles_the_dim_and_is_refused_on_siglip(checkpoints):
    encoder = load_image_encoder(
        checkpoints["dinov3"], device="cpu", image_size=64, pooling="contrast"
    )
    assert encoder.dim == 64 and encoder.info()["pooling"] == "contrast"
    assert encoder.encode([picture(200, 150, 3)]).shape == (1, 64)
    with pytest.raises(ValueError, match="contrast"):
        load_image_encoder(checkpoints["siglip"], device="cpu", pooling="contrast")
