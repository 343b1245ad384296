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


@pytest.mark.parametrize(
    ("workers", "cpus", "gpus", "gpus_per_worker", "expected"),
    [
        (None, 2, 0, 0.0, 1),  # this 2-CPU machine: one actor, one CPU left to decoding
        (None, 16, 0, 0.0, 15),
        (None, 16, 4, 1.0, 4),  # no more actors than the GPUs hold
        (3, 16, 0, 0.0, 3),
    ],
)
def test_encoder_actors_default_from_the_cluster_leaving_a_cpu_to_decode(
    workers, cpus, gpus, gpus_per_worker, expected
):
    from indexer.build.ray_engine import RayOptions, actor_count

    options = RayOptions(workers=workers, gpus_per_worker=gpus_per_worker)
    assert actor_count(options, cpus, gpus) == expected


def test_actors_that_would_starve_decoding_are_refused_with_the_fix():
    from indexer.build.ray_engine import RayEngineError, RayOptions, actor_count

    with pytest.raises(RayEngineError, match="use --workers 1 or fewer"):
        actor_count(RayOptions(workers=2), 2)
    with pytest.raises(RayEngineError, match="needs at least 2 CPUs"):
        actor_count(RayOptions(), 1)


def test_the_cli_checks_the_actors_before_ray_starts_or_models_load(monkeypatch, tmp_path):
    """On a 2-CPU machine ``--workers 2`` is refused at once: not after Ray's start-up, and not
    by the model loader (the model given does not exist)."""
    from typer.testing import CliRunner

    from indexer.build import ray_engine
    from indexer.cli.main import cli

    monkeypatch.setattr(ray_engine, "local_cpus", lambda: 2)
    monkeypatch.setattr(ray_engine, "connect", lambda options: pytest.fail("Ray was started"))
    args = ["index", "build", "--manifest", str(tmp_path), "--out", str(tmp_path / "art")]
    args += ["--engine", "ray", "--workers", "2", "--image-model", str(tmp_path / "none")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and "use --workers 1 or fewer" in result.output
    assert "not found" not in result.output


def test_an_actor_pools_the_regions_the_local_engine_pools(encoder, tmp_path, taxonomy):
    """With regions, an actor returns per row the region drafts and calibration patches of its
    own forward pass (not the patch tokens), equal to the local engine's; an error row none."""
    from indexer.build.embed import embed_images
    from indexer.build.ray_engine import EncodeActor, EncoderRecipe, prepare_row
    from indexer.build.regions import RegionSink
    from indexer.readers.dataset import read_dataset
    from indexer.synthetic.generator import generate_dataset
    from models.embedding import Preprocessing

    generate_dataset(tmp_path / "data", 4, seed=3, image_size=(160, 120))
    records = [r for r in read_dataset(tmp_path / "data", taxonomy=taxonomy).records if r.defects]
    rows = [{"id": r.id, "file": str(r.image_path), "record": r} for r in records]
    rows.append({"id": "gone", "file": str(tmp_path / "gone.jpg"), "record": records[0]})
    prepared = [prepare_row(row, preprocessing=Preprocessing.of(encoder)) for row in rows]
    batch = {key: column([p[key] for p in prepared]) for key in prepared[0]}  # as Ray's numpy
    out = EncodeActor(EncoderRecipe.of(encoder), "cpu", 2, regions=True)(batch)
    assert "tokens" not in out and out["regions"][-1] is None and out["error"][-1]

    local = RegionSink()
    embed_images(records, image_encoder=encoder, region_sink=local, progress=False)
    for record, (drafts, samples) in zip(records, out["regions"][:-1], strict=True):
        assert [d.region for d in drafts] == [d.region for d in local.drafts[record.id]]
        assert drafts, record.id
        for ours, theirs in zip(drafts, local.drafts[record.id], strict=True):
            np.testing.assert_allclose(ours.vector, theirs.vector, atol=1e-5)
        assert [(s.inside, s.group) for s in samples] == [
            (s.inside, s.group) for s in local.samples[record.id]
        ]


def column(values: list) -> np.ndarray:
    """A one-dimensional object column (numpy would stack the arrays or records)."""
    out = np.empty(len(values), object)
    out[:] = values
    return out
