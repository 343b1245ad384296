"""The one label-vote rule, and the evaluation predicting exactly what /context reports."""

from __future__ import annotations

import numpy as np
import pytest
from vector_index import KeywordTextEncoder, item, write_vector_index

from indexer.evaluation.queries import leave_one_out_queries
from indexer.evaluation.runner import evaluate
from indexer.retrieval.retriever import Retriever
from indexer.retrieval.votes import consensus, predicted_labels, tally


def votes_of(labels, scores, taxonomy):
    return tally(labels, scores, no_damage=taxonomy.no_damage_id, order=taxonomy.order)


def test_support_weight_and_majority(taxonomy):
    votes = votes_of(
        [{"dent": 2}, {"dent": 1, "crack": 1}, {"crack": 3}, {}], [0.5, 0.3, 0.2, -0.4], taxonomy
    )
    by = {v.label: v for v in votes}
    assert [v.label for v in votes] == ["dent", "crack", "no_damage"]  # support, then weight
    assert (by["dent"].support, by["dent"].neighbours) == (2, 4)
    assert by["dent"].weighted == pytest.approx(0.8) and by["no_damage"].weighted == 0.0
    assert by["dent"].count == 2 and by["crack"].count == 2  # median 1.5 and 2 -> 2, 2
    assert predicted_labels(votes) == {"dent", "crack"}  # 2 of 4 each: half is enough


def test_no_majority_predicts_the_most_supported_label_ties_by_taxonomy_order(taxonomy):
    labels = [{"crack": 1}, {"surface_scratch": 1}, {"dent": 1}]
    votes = votes_of(labels, [0.9, 0.5, 0.1], taxonomy)
    assert votes[0].label == "crack"  # listed first: the heaviest of the tied supports
    first = min(("crack", "surface_scratch", "dent"), key=taxonomy.order)
    assert predicted_labels(votes) == {first}
    assert votes_of([], [], taxonomy) == []


def test_consensus_drops_no_damage_and_takes_the_weighted_zone(taxonomy):
    items = [
        item(0, {}, zone="rear_bumper", taxonomy=taxonomy),
        item(1, {}, zone="hood_center", taxonomy=taxonomy),
        item(2, {"dent": 3}, zone="hood_center", taxonomy=taxonomy),
    ]
    c = consensus(items, [0.5, 0.3, 0.3], taxonomy)
    assert c.labels == {} and c.zone == "hood_center"  # no_damage 2 of 3: "no visible damage"
    assert consensus(items, [0.9, 0.3, 0.3], taxonomy).zone == "rear_bumper"  # by weight
    c = consensus(items[1:], [0.3, 0.3], taxonomy)
    assert c.labels == {"dent": 3}  # dent 1 of 2 is half


@pytest.fixture
def mixed_retriever(taxonomy, tmp_path):
    """24 items in 4 visual clusters whose labels disagree, so some votes have no majority."""
    rng = np.random.default_rng(3)
    pool = [
        {"surface_scratch": 1},
        {"dent": 2},
        {"crack": 1},
        {},
        {"dent": 1, "crack": 1},
        {"deep_scratch": 1},
    ]
    centres = rng.normal(size=(4, 12))
    vectors, items = [], []
    for row in range(24):
        vectors.append(centres[row % 4] + 0.8 * rng.normal(size=12))
        items.append(
            item(row, pool[int(rng.integers(len(pool)))], group=f"g{row // 3}", taxonomy=taxonomy)
        )
    arts = write_vector_index(tmp_path / "art", items, np.array(vectors), taxonomy)
    return Retriever(arts, image_encoder=None, text_encoder=KeywordTextEncoder(), taxonomy=taxonomy)


def test_the_evaluation_predicts_what_context_reports(mixed_retriever, taxonomy):
    queries = leave_one_out_queries(mixed_retriever.artifacts)
    ev = evaluate(
        mixed_retriever,
        queries,
        modes=["image"],
        ks=[1, 3, 5],
        leave_one_out=True,
        random_repeats=1,
    )
    assert ev.vote_k == 5
    fallbacks = 0
    for outcome in ev.runs[0].outcomes:
        q = outcome.query
        result = mixed_retriever.search(
            q.vector, k=ev.vote_k, exclude_ids=q.exclude_ids, exclude_groups=q.exclude_groups
        )
        votes = result.votes  # what /context reports
        assert outcome.predicted == {v.label for v in votes if v.predicted}, q.id
        fallbacks += all(2 * v.support < v.neighbours for v in votes)
    assert fallbacks > 0  # the no-majority case is exercised too
    assert len({o.predicted for o in ev.runs[0].outcomes}) > 2
