"""The Ray engine's pieces that need no running Ray: the local build never imports Ray, the CPU
tasks' preprocessing gives the encoder's pixels, an actor refuses an encoder that is not the
driver's, and a missing Ray is one clear error."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image


def test_the_local_build_and_the_cli_never_import_ray():
    code = (
        "import sys, indexer.cli.main, indexer.build.pipeline, indexer.build.ray_engine, app.cli; "
        "sys.exit(1 if 'ray' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.fixture(scope="module")
def encoder(tiny_dinov3):
    from models.image_encoder import load_image_encoder

    return load_image_encoder(str(tiny_dinov3), device="cpu", image_size=64)


def test_preprocessing_without_the_model_gives_the_encoders_pixels(encoder, tmp_path):
    import pickle

    from models.embedding import Preprocessing, prepare_image

    photo = tmp_path / "p.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (120, 160, 3), np.uint8)).save(photo)
    preprocessing = pickle.loads(pickle.dumps(Preprocessing.of(encoder)))
    np.testing.assert_array_equal(
        prepare_image(photo, preprocessing).pixels, prepare_image(photo, encoder).pixels
    )


def test_an_actor_refuses_an_encoder_that_is_not_the_drivers(encoder):
    from indexer.build.ray_engine import EncoderRecipe, RayEngineError

    recipe = EncoderRecipe.of(encoder)
    assert recipe.load("cpu").dim == encoder.dim  # the same recipe loads the same encoder
    other = dataclasses.replace(recipe, pooling="cls+mean")
    with pytest.raises(RayEngineError, match="pooling"):
        other.load("cpu")


def test_a_missing_ray_is_one_clear_error(monkeypatch):
    from indexer.build.ray_engine import RayEngineError, RayOptions, connect
    from models.errors import VisragError

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(RayEngineError, match=r"visrag\[ray\]") as info:
        connect(RayOptions())
    assert isinstance(info.value, VisragError)
