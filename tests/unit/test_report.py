"""The runner on a small hand-made catalogue through the real Retriever, and the report files."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image
from report_metrics import FRACTION_METRICS
from vector_index import item, keyword_retriever, write_vector_index

from indexer.evaluation.queries import (
    ORACLE,
    ORACLE_LABEL,
    EvaluationError,
    leave_one_out_queries,
)
from indexer.evaluation.report import write_report
from indexer.evaluation.runner import evaluate
from models.description import describe
from models.fusion import l2_normalise

# (labels, group): scratch and no-damage occur in several groups; crack only in g3
CATALOGUE = [
    ({"surface_scratch": 1}, "g0"),
    ({"dent": 1}, "g0"),
    ({"surface_scratch": 2}, "g1"),
    ({"dent": 1}, "g1"),
    ({"surface_scratch": 1}, "g2"),
    ({}, "g2"),
    ({"crack": 1}, "g3"),
    ({}, "g3"),
]


@pytest.fixture
def retriever(taxonomy, tmp_path):
    rng = np.random.default_rng(0)
    centres = {k: rng.normal(size=32) for k in ("surface_scratch", "dent", "crack", "")}
    vectors, items = [], []
    for row, (labels, group) in enumerate(CATALOGUE):
        key = next(iter(labels), "")
        vectors.append(centres[key] + 0.2 * rng.normal(size=32))
        image = tmp_path / f"item{row}.png"
        Image.new("RGB", (40, 30), (row * 30, 100, 200)).save(image)
        items.append(item(row, labels, group=group, image=str(image), taxonomy=taxonomy))
    arts = write_vector_index(tmp_path / "art", items, np.array(vectors), taxonomy)
    return keyword_retriever(arts, taxonomy, rerank_candidates=4)


@pytest.fixture
def image_and_rerank(retriever):
    """Leave-one-out evaluation of image search and of rerank at two alphas."""
    return evaluate(
        retriever,
        leave_one_out_queries(retriever.artifacts),
        modes=["image", "rerank"],
        alphas=[0.5, 0.8],
        ks=[1, 3, 5],
        leave_one_out=True,
        random_repeats=5,
    )


def test_leave_one_out_excludes_own_group_and_finds_visual_neighbours(retriever, image_and_rerank):
    ev = image_and_rerank
    assert [r.name for r in ev.runs] == ["image", "rerank a=0.5", "rerank a=0.8"]
    groups = {it.id: it.group for it in retriever.artifacts.items}
    for run in ev.runs:
        for o in run.outcomes:
            assert o.neighbours, o.query.id
            assert all(groups[n.id] != o.query.group for n in o.neighbours)
    image = ev.runs[0]
    by_id = {o.query.id: o for o in image.outcomes}
    # labels present in another group are found at rank 1 (clustered vectors) ...
    for qid in ("item0", "item1", "item2", "item3", "item4", "item5", "item7"):
        assert by_id[qid].metrics["hit@1"] == 1.0, qid
    # ... the crack occurs in no other group: it can never be found
    assert by_id["item6"].metrics["recall@3"] == 0.0
    assert image.per_label_recall[3]["crack"] == (0.0, 1)
    assert image.summary["hit@1"] == pytest.approx(7 / 8)
    assert ev.baselines["random"].summary["hit@1"] < image.summary["hit@1"]
    assert ev.setting["protocol"].startswith("leave-one-out")


def test_majority_baseline_retrieves_the_most_common_labels(retriever):
    ev = evaluate(retriever, leave_one_out_queries(retriever.artifacts), ks=[1], leave_one_out=True)
    majority = ev.baselines["majority"]
    # query item1 (dent, g0): pool = 6 items; scratch and no_damage on 2 each, dent and crack 1;
    # the tie (sum of frequencies 2) is broken by id: item2 (scratch) comes first
    q1 = next(o for o in majority.outcomes if o.query.id == "item1")
    assert [n.id for n in q1.neighbours] == ["item2"]
    # query item6 (crack, g3): pool has scratch x3, dent x2, no_damage x1 -> a scratch item first
    q6 = next(o for o in majority.outcomes if o.query.id == "item6")
    assert q6.neighbours[0].labels == ("surface_scratch",)


def test_hybrid_requires_a_declared_text_source(retriever):
    queries = leave_one_out_queries(retriever.artifacts)
    with pytest.raises(EvaluationError, match="text-source"):
        evaluate(retriever, queries, modes=["hybrid"], leave_one_out=True)
    with pytest.raises(EvaluationError, match="no text"):
        evaluate(retriever, queries, modes=["hybrid"], text_source="caption", leave_one_out=True)


def test_oracle_text_is_labelled_as_leaking_everywhere(retriever, tmp_path):
    queries = leave_one_out_queries(retriever.artifacts, text_source=ORACLE)
    ev = evaluate(
        retriever,
        queries,
        modes=["hybrid"],
        ks=[1, 3],
        text_source=ORACLE,
        leave_one_out=True,
        random_repeats=2,
    )
    assert ev.setting["text_source"] == ORACLE_LABEL
    assert any(ORACLE_LABEL in w for w in ev.warnings)
    paths = write_report(ev, tmp_path / "out")
    for path in paths.values():
        assert ORACLE_LABEL in path.read_text("utf-8"), path.name


def test_report_files(image_and_rerank, tmp_path):
    paths = write_report(image_and_rerank, tmp_path / "out")
    assert {p.name for p in paths.values()} == {"metrics.json", "summary.md", "report.html"}

    data = json.loads(paths["metrics"].read_text())
    assert [r["name"] for r in data["runs"]] == ["image", "rerank a=0.5", "rerank a=0.8"]
    for run in [*data["runs"], *data["baselines"].values()]:
        for key in (*FRACTION_METRICS, "label_recall_macro@5"):
            assert 0.0 <= run["metrics"][key] <= 1.0, key
    image = data["runs"][0]
    assert image["metrics"]["hit@1"] == pytest.approx(7 / 8)
    assert set(image["latency_ms"]) >= {"search", "total"}
    assert len(image["queries"]) == 8 and image["confusion"]["columns"][-1] == "(none)"

    md = paths["summary"].read_text()
    # the report leads with which mode to use, read from the intervals
    verdict = data["verdict"]
    assert verdict[0].startswith("Verdict: use mode '")
    assert any(line.startswith("rerank a=0.5 vs image: ") for line in verdict)
    assert verdict[-1].startswith("image beats the majority label on micro recall@1: ")
    assert md.splitlines()[2] == f"**{verdict[0]}**"  # no warning here: right under the title
    assert "| metric | image | rerank a=0.5 | rerank a=0.8 | majority | random |" in md
    assert re.search(r"\| hit@1 \| 0\.875 \|", md)

    # every run against image and against the majority, each difference with its interval
    spread = data["uncertainty"]
    assert spread["unit"] == "group" and spread["groups"] == 4 and spread["repeats"] == 1000
    pairs = {(c["run"], c["versus"]) for c in spread["comparisons"]}
    assert pairs == {
        ("rerank a=0.5", "image"),
        ("rerank a=0.8", "image"),
        ("image", "majority"),
        ("rerank a=0.5", "majority"),
        ("rerank a=0.8", "majority"),
    }
    image_vs_majority = next(
        c
        for c in spread["comparisons"]
        if (c["run"], c["versus"], c["metric"]) == ("image", "majority", "recall@1")
    )
    majority = data["baselines"]["majority"]["metrics"]["recall@1"]
    assert image_vs_majority["difference"] == pytest.approx(image["metrics"]["recall@1"] - majority)
    assert image_vs_majority["low"] <= image_vs_majority["difference"] <= image_vs_majority["high"]
    assert "Differences with 95% intervals (paired bootstrap over 4 query groups" in md
    assert re.search(r"\| image \| majority \| recall@1 \| [+-]\d\.\d{3} \| \[", md)

    page = paths["report"].read_text()
    srcs = re.findall(r'<img[^>]*src="([^"]+)"', page)
    assert srcs and all(s.startswith("data:image/") for s in srcs)  # self-contained
    assert sum(s.startswith("data:image/png") for s in srcs) >= 4  # curves, sweep, labels, conf.
    assert any(s.startswith("data:image/jpeg") for s in srcs)  # neighbour thumbnails
    assert "http://" not in page and "https://" not in page
    assert "Differences with 95% intervals" in page
    assert page.index("Verdict: use mode") < page.index("Metrics beside baselines")


def test_bootstrap_zero_reports_no_intervals(retriever, tmp_path):
    ev = evaluate(
        retriever,
        leave_one_out_queries(retriever.artifacts),
        ks=[1],
        leave_one_out=True,
        random_repeats=1,
        bootstrap=0,
    )
    paths = write_report(ev, tmp_path / "out")
    assert json.loads(paths["metrics"].read_text())["uncertainty"] is None
    assert "Differences with" not in paths["summary"].read_text()
    assert "Differences with" not in paths["report"].read_text()


def test_report_page_escapes_dataset_text(retriever, tmp_path):
    ev = evaluate(
        retriever,
        leave_one_out_queries(retriever.artifacts),
        ks=[1, 3],
        leave_one_out=True,
        random_repeats=1,
    )
    ev.warnings.append('<script>alert("x")</script> & co')
    ev.runs[0].name = "<b>image</b>"
    page = write_report(ev, tmp_path / "out")["report"].read_text()
    assert "<script>" not in page and "<b>image" not in page
    assert "&lt;script&gt;" in page and "&lt;b&gt;image&lt;/b&gt;" in page


def test_majority_ranking_prefers_the_most_frequent_label_set(taxonomy):
    from indexer.evaluation.baselines import majority_ranking

    sets = [
        frozenset({"surface_scratch", "dent"}),
        frozenset({"surface_scratch"}),
        frozenset({"dent"}),
        frozenset({"surface_scratch"}),
    ]
    items = [item(i, {}, group="g", taxonomy=taxonomy) for i in range(4)]
    ranked = majority_ranking(items, sets, np.arange(4), 4)
    # {scratch} is the most frequent set (2 items); then {scratch, dent} (label frequencies 3 + 2)
    # before {dent} (2)
    assert [n.id for n in ranked] == ["item1", "item3", "item0", "item2"]
    assert [n.id for n in majority_ranking(items, sets, np.array([0, 2]), 2)] == ["item0", "item2"]


class PixelEncoder:
    """Stand-in image encoder: the first 32 pixel values of a 4x4 thumbnail, L2-normalised."""

    image_size = 4

    def preprocess(self, image):
        return np.asarray(image.convert("RGB").resize((4, 4)), np.float32).ravel()[:32] + 1.0

    def encode_preprocessed(self, batch, **_):
        return l2_normalise(np.stack(batch))


def test_held_out_queries_with_a_declared_caption_field(retriever, taxonomy, tmp_path):
    from indexer.evaluation.queries import load_queries

    leaky = describe({"surface_scratch": 2}, "hood_center", taxonomy)
    lines = [
        {"image": "q0.png", "labels": ["dent"], "caption": "a dent near the door handle"},
        {
            "image": "q1.png",
            "labels": {"surface_scratch": 2},
            "zone": "hood_center",
            "caption": leaky,
        },
    ]
    for i in range(2):
        Image.new("RGB", (20, 20), (200, 30 * i, 10)).save(tmp_path / f"q{i}.png")
    manifest = tmp_path / "test.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))

    queries = sorted(load_queries(manifest, taxonomy, text_source="caption"), key=lambda q: q.id)
    assert [q.text for q in queries] == ["a dent near the door handle", leaky]
    assert [q.labels for q in queries] == [{"dent": 1}, {"surface_scratch": 2}]
    oracle = sorted(load_queries(manifest, taxonomy, text_source=ORACLE), key=lambda q: q.id)
    assert oracle[1].text == leaky
    assert load_queries(manifest, taxonomy)[0].text is None

    retriever.image_encoder = PixelEncoder()
    ev = evaluate(
        retriever,
        queries,
        modes=["image", "hybrid"],
        ks=[1, 3],
        text_source="caption",
        random_repeats=1,
    )
    assert [r.name for r in ev.runs] == ["image", "hybrid"]
    # the second caption is the ground-truth template sentence: flagged as a leak
    assert any("1 of 2 query texts in 'caption'" in w for w in ev.warnings)
    assert {"decode", "preprocess", "encode", "search"} <= set(ev.runs[0].latency)
    assert "text_encode" in ev.runs[1].latency
