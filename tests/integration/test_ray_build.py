"""`visrag index build --engine ray` with its default options on a local Ray (2 CPUs) with the
tiny random DINOv3: the index equals the in-process build (ids, catalogue, vectors, region table,
evaluation), `index verify` accepts it, broken inputs are reported by file name, and a second run
resumes from the cache."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from cli_runs import build_args, evaluate_args, invoke

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray")
N_IMAGES = 16


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A generated dataset split into train/test JSONL, one broken image in train."""
    from indexer.synthetic.generator import generate_dataset
    from models.testing import make_tiny_dinov3

    root = tmp_path_factory.mktemp("ray-build")
    generate_dataset(root / "data", N_IMAGES, seed=0, image_size=(160, 120))
    invoke("split", str(root / "data"), "--out", str(root / "split"), "--seed", "0")
    (root / "split" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    with (root / "split" / "train.jsonl").open("a") as f:
        f.write(json.dumps({"id": "broken", "image": "broken.jpg", "labels": ["dent"]}) + "\n")
    return root, make_tiny_dinov3(root / "tiny-dinov3")


def build(root: Path, model: Path, out: str, *extra: str, progress: bool = False) -> str:
    train = root / "split" / "train.jsonl"
    return invoke(
        *build_args(train, root / out, model, "--batch-size", "4", *extra, progress=progress)
    )


def evaluate(root: Path, art: str) -> dict:
    test = root / "split" / "test.jsonl"
    invoke(*evaluate_args(root / art, test, root / f"eval-{art}", "--mode", "image,rerank"))
    return json.loads((root / f"eval-{art}" / "metrics.json").read_text())


@pytest.fixture(scope="module")
def built(env, local_ray):
    root, model = env
    local = build(root, model, "local")
    distributed = build(root, model, "ray", "--engine", "ray", progress=True)  # default options
    return local, distributed


def test_ray_build_equals_the_local_build(env, built):
    from indexer.index.artifacts import load_artifacts

    root, _ = env
    local_out, ray_out = built
    assert "embedding images" in ray_out  # the progress bar
    # the default on 2 CPUs: one encoder actor, said before Ray starts; the encoder's busy share
    # is of the time after Ray's start-up, which is reported apart
    assert "Ray: 1 encoder actor(s), decoding on the other CPU(s)" in ray_out
    assert "image encoder busy" in ray_out and "s of Ray start-up" in ray_out
    a, b = load_artifacts(root / "local"), load_artifacts(root / "ray")
    assert len(b) == len(a) > 0
    assert [it.id for it in b.items] == [it.id for it in a.items]
    assert [dataclasses.asdict(it) for it in b.items] == [dataclasses.asdict(it) for it in a.items]
    cosines = np.sum(a.image_vectors * b.image_vectors, axis=1)
    assert cosines.min() >= 0.9999
    np.testing.assert_allclose(b.text_vectors, a.text_vectors, atol=1e-6)
    assert b.manifest.image_model == a.manifest.image_model
    assert b.manifest.failed == a.manifest.failed and len(a.manifest.failed) == 1
    for output in built:
        assert "1 input(s) failed and were skipped" in output and "broken.jpg" in output


def test_the_ray_actors_pool_the_same_regions(env, built):
    """The actors pool the regions from their own forward pass (the default, as the local
    engine): the same region rows, vectors, background bank and 'where' threshold."""
    from indexer.index.artifacts import load_artifacts

    root, _ = env
    a, b = load_artifacts(root / "local"), load_artifacts(root / "ray")
    assert a.regions is not None and b.regions is not None and len(a.regions) > 0
    assert b.regions.regions == a.regions.regions  # ids, items, labels, polygons, boxes
    cosines = np.sum(a.regions.vectors * b.regions.vectors, axis=1)
    assert cosines.min() >= 0.9999
    bank_a, bank_b = a.regions.background, b.regions.background
    np.testing.assert_array_equal(bank_b.items, bank_a.items)
    assert np.sum(bank_a.vectors * bank_b.vectors, axis=1).min() >= 0.9999
    fit_a, fit_b = a.manifest.regions.calibration, b.manifest.regions.calibration
    assert (fit_b["inside"], fit_b["background"]) == (fit_a["inside"], fit_a["background"])
    assert fit_b["threshold"] == pytest.approx(fit_a["threshold"], abs=1e-3)
    assert f"regions: {len(b.regions)} (patches" in built[1]


def test_index_verify_accepts_the_ray_build(env, built):
    root, _ = env
    assert "OK" in invoke("index", "verify", str(root / "ray"))


def test_ray_build_evaluates_identically(env, built):
    root, _ = env
    local, distributed = evaluate(root, "local"), evaluate(root, "ray")
    assert distributed["setting"]["queries"] == local["setting"]["queries"] > 0
    assert [r["metrics"] for r in distributed["runs"]] == [r["metrics"] for r in local["runs"]]
    assert distributed["baselines"] == local["baselines"]


def test_undecodable_image_is_reported_by_the_ray_task_and_the_cache_resumes(
    env, local_ray, taxonomy, text_encoder, tmp_path
):
    """An image the reader never opened (records given directly) fails in the Ray decode task:
    reported by file name, skipped; a second build takes every vector from the cache. Actors
    that would leave no CPU to the decode tasks are refused up front."""
    from indexer.build.pipeline import build_index
    from indexer.build.ray_engine import RayEngineError, RayOptions, ray_engine
    from indexer.readers.dataset import read_dataset
    from models.image_encoder import load_image_encoder

    root, model = env
    records = list(read_dataset(root / "data", taxonomy=taxonomy).records)[:6]
    bad = tmp_path / "cut.jpg"
    bad.write_bytes(Path(records[0].image_path).read_bytes()[:200])
    records.append(dataclasses.replace(records[0], id="cut", image_path=str(bad)))
    encoder = load_image_encoder(str(model), device="cpu", image_size=64)
    engine = ray_engine(RayOptions(workers=1))

    def run(out: str):
        return build_index(
            records,
            tmp_path / out,
            image_encoder=encoder,
            text_encoder=text_encoder,
            taxonomy=taxonomy,
            batch_size=4,
            cache_dir=tmp_path / "cache",
            progress=False,
            engine=engine,
        )

    with pytest.raises(RayEngineError, match="--workers 1 or fewer"):  # decode would starve
        build_index(
            records,
            tmp_path / "starved",
            image_encoder=encoder,
            text_encoder=text_encoder,
            taxonomy=taxonomy,
            progress=False,
            engine=ray_engine(RayOptions(workers=2)),
        )
    first = run("first")
    assert [p.file for p in first.failed] == [str(bad)]
    assert "ImageDecodeError" in first.failed[0].reason
    assert (first.count, first.embedded, first.cached) == (6, 6, 0)
    second = run("second")
    assert (second.count, second.embedded, second.cached) == (6, 0, 6)
    assert [p.file for p in second.failed] == [str(bad)]
    # the regions the actors pooled went into the cache with the vectors
    assert second.manifest.regions == first.manifest.regions
    assert first.manifest.regions is not None and first.manifest.regions.count > 0
