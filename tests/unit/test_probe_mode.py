"""The label head stored with the artifacts, mode ``probe``, label estimates, and the
leakage-free evaluation of them, over small real flat artifact directories."""

from __future__ import annotations

import json

import numpy as np
import pytest
from vector_index import item, keyword_retriever, write_vector_index

from indexer.errors import ChecksumError
from indexer.evaluation.estimate_quality import query_heads, query_probas
from indexer.evaluation.queries import leave_one_out_queries
from indexer.evaluation.report import write_report
from indexer.evaluation.runner import evaluate
from indexer.index.artifacts import load_artifacts
from indexer.index.manifest import manifest_checksum
from indexer.index.updating import rewrite_artifacts
from indexer.query import QueryError

KINDS = [{"dent": 1}, {"crack": 1}, {"surface_scratch": 1}, {}]


def catalogue(taxonomy, tmp_path, *, n=48, groups=12, seed=0, separable=True, name="art"):
    """Items in ``groups`` source images; vectors cluster by label when ``separable``."""
    rng = np.random.default_rng(seed)
    kinds = [i % len(KINDS) for i in range(n)]
    centres = rng.normal(size=(len(KINDS), 16)) * (3 if separable else 0)
    vectors = centres[kinds] + rng.normal(size=(n, 16))
    items = [
        item(i, KINDS[k], group=f"g{i % groups}", taxonomy=taxonomy) for i, k in enumerate(kinds)
    ]
    return write_vector_index(tmp_path / name, items, vectors, taxonomy)


def image_and_probe(arts, taxonomy):
    """Leave-one-out evaluation of image search and of probe at k 1 and 5."""
    return evaluate(
        keyword_retriever(arts, taxonomy),
        leave_one_out_queries(arts),
        modes=["image", "probe"],
        ks=(1, 5),
        leave_one_out=True,
        random_repeats=5,
    )


def test_head_is_fitted_described_and_checksummed(taxonomy, tmp_path):
    arts = catalogue(taxonomy, tmp_path)
    section = arts.manifest.label_head
    assert section is not None and section.status == "fitted"
    assert set(section.labels) == {"crack", "dent", "no_damage", "surface_scratch"}
    extra = section.model_dump()
    for key in ("reg", "calibration", "training_size", "fit_seconds"):
        assert key in extra
    assert extra["training_size"] == 48 and extra["folds"] == 10
    assert section.probe_weight in extra["weight_grid"] and extra["reg"] in extra["reg_grid"]
    assert arts.label_head is not None and arts.label_head.labels == section.labels
    head_files = [f for f in arts.manifest.files if f.startswith("label_head.")]
    assert len(head_files) == 6
    (tmp_path / "art" / head_files[0]).write_bytes(b"tampered")
    with pytest.raises(ChecksumError):
        load_artifacts(tmp_path / "art")


def test_probe_ranks_by_the_estimate_and_weight_zero_is_image_search(taxonomy, tmp_path):
    arts = catalogue(taxonomy, tmp_path)
    r = keyword_retriever(arts, taxonomy)
    q = arts.image_vectors[0]
    image = [h.id for h in r.search(q, k=5, mode="image", exclude_ids=["item0"]).hits]
    plain = r.search(q, k=5, mode="probe", probe_weight=0.0, exclude_ids=["item0"])
    assert [h.id for h in plain.hits] == image
    forced = r.search(q, k=5, mode="probe", probe_weight=16.0, exclude_ids=["item0"])
    assert [lc.id for lc in forced.hits[0].labels] == ["dent"]
    assert [h.id for h in forced.hits[1:]] == [i for i in image if i != forced.hits[0].id][:4]
    assert forced.estimates[0].label == "dent"
    # the stored head's own estimate for a dent item says dent first
    assert r.search(q, k=1).estimates[0].label == "dent"
    with pytest.raises(QueryError, match="probe_weight"):
        r.search(q, mode="probe", probe_weight=-1)


def test_catalogue_without_a_head_says_why_and_probe_is_refused(taxonomy, tmp_path):
    rng = np.random.default_rng(1)
    items = [item(i, KINDS[i % 2], group="one-photo", taxonomy=taxonomy) for i in range(6)]
    arts = write_vector_index(tmp_path / "one", items, rng.normal(size=(6, 8)), taxonomy)
    section = arts.manifest.label_head
    assert section is not None and section.status == "unavailable" and "one group" in section.reason
    r = keyword_retriever(arts, taxonomy)
    assert r.search(arts.image_vectors[0], k=2).estimates == ()
    with pytest.raises(QueryError, match="no label head"):
        r.search(arts.image_vectors[0], mode="probe")


def test_index_written_before_heads_still_loads(taxonomy, tmp_path):
    catalogue(taxonomy, tmp_path)
    path = tmp_path / "art" / "manifest.json"
    data = json.loads(path.read_text())
    data.pop("label_head")
    for name in [f for f in data["files"] if f.startswith("label_head.")]:
        del data["files"][name]
        (tmp_path / "art" / name).unlink()
    data["manifest_sha256"] = manifest_checksum(data)  # consistent, as such an index was written
    path.write_text(json.dumps(data))
    arts = load_artifacts(tmp_path / "art")
    assert arts.label_head is None
    with pytest.raises(QueryError, match="before label heads"):
        keyword_retriever(arts, taxonomy).search(arts.image_vectors[0], mode="probe")


def test_removing_items_refits_the_head_and_its_probe_weight(taxonomy, tmp_path):
    arts = catalogue(taxonomy, tmp_path)
    keep = np.array([it.labels != {"crack": 1} for it in arts.items])
    rewrite_artifacts(arts, keep=keep, history={"op": "remove"})
    again = load_artifacts(tmp_path / "art")
    assert again.manifest.label_head is not None
    assert "crack" not in again.manifest.label_head.labels
    assert again.manifest.label_head.model_dump()["training_size"] == int(keep.sum())
    assert again.label_head is not None
    assert again.label_head.weight == again.manifest.label_head.probe_weight


def test_leave_one_out_evaluation_names_the_probe_run_and_scores_estimates(taxonomy, tmp_path):
    ev = image_and_probe(catalogue(taxonomy, tmp_path), taxonomy)
    assert [run.name for run in ev.runs] == ["image", "probe"]
    assert ev.estimates is not None and ev.estimates["source"] == "cross-fitted by group"
    for key in ("micro_f1", "macro_f1", "brier", "ece"):
        assert key in ev.estimates["head"] and key in ev.estimates["prior"]
    # separable vectors: the estimates beat the priors, and probe keeps image search's recall
    assert ev.estimates["head"]["brier"] < ev.estimates["prior"]["brier"]
    image, probe = (run.summary["recall@1"] for run in ev.runs)
    assert probe >= image - 0.005


def test_permuted_labels_canary_probe_stays_near_the_best_baseline(taxonomy, tmp_path):
    """Labels assigned at random (a majority label, like the real crops): a head that leaked the
    query's own labels would lift probe far above every baseline; without signal it must not rise
    more than 0.05 above the best of image, majority and random (one-sided, DESIGN §5: a probe
    that stops amplifying the majority may fall below it, which is no leak)."""
    rng = np.random.default_rng(0)
    kinds = [{"surface_scratch": 1}] * 60 + [{"dent": 1}] * 10 + [{"crack": 1}] * 10
    perm = rng.permutation(len(kinds))
    items = [item(i, kinds[p], group=f"g{i % 20}", taxonomy=taxonomy) for i, p in enumerate(perm)]
    arts = write_vector_index(tmp_path / "canary", items, rng.normal(size=(80, 16)), taxonomy)
    ev = image_and_probe(arts, taxonomy)
    best = max(
        ev.runs[0].summary["recall@1"], *(b.summary["recall@1"] for b in ev.baselines.values())
    )
    assert ev.runs[1].summary["recall@1"] <= best + 0.05


def test_leave_one_out_scores_each_query_with_a_head_that_never_saw_its_group(taxonomy, tmp_path):
    """A label carried by one photo only: the stored head knows it, the evaluation's must not."""
    rng = np.random.default_rng(2)
    kinds = [KINDS[i % 3] for i in range(48)]
    kinds[:4] = [{"dent": 1, "misaligned_part": 1}] * 4  # photo g0 alone carries misaligned_part
    centres = rng.normal(size=(3, 16)) * 3
    vectors = centres[[i % 3 for i in range(48)]] + rng.normal(size=(48, 16))
    items = [item(i, k, group=f"g{i // 4}", taxonomy=taxonomy) for i, k in enumerate(kinds)]
    arts = write_vector_index(tmp_path / "one", items, vectors, taxonomy)
    head = arts.label_head
    assert head is not None
    col = head.labels.index("misaligned_part")
    stored = head.scores(arts.image_vectors[:4])[:, col]  # the raw estimate probe compares
    heads = query_heads(arts, leave_one_out_queries(arts)[:4], leave_one_out=True)
    assert heads is not None
    crossed = np.array(
        [h.scores(v)[0, col] for h, v in zip(heads, arts.image_vectors[:4], strict=True)]
    )
    assert np.abs(crossed).max() < 1e-9 and stored.min() > 0.05  # the stored head saw g0
    assert query_probas(heads, list(arts.image_vectors[:4]))[:, col].max() < 0.05
    ev = image_and_probe(arts, taxonomy)
    assert ev.estimates is not None
    assert ev.estimates["source"] == "cross-fitted by group"
    levels = ev.estimates["label_sets"]
    assert [c["level"] for c in levels] == [0.8, 0.9, 0.95]
    assert all(c["low"] <= c["coverage"] <= c["high"] for c in levels)
    assert levels[0]["mean_size"] <= levels[2]["mean_size"]  # a higher level, a wider set
    page = write_report(ev, tmp_path / "report")["report"].read_text()
    assert "Conformal label sets: coverage" in page and "reliability diagram" in page
    assert ev.novelty is not None and {n["label"] for n in ev.novelty} >= {
        "crack",
        "surface_scratch",
    }
