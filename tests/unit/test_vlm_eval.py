"""The pieces of ``visrag evaluate-vlm`` a user reads the result through: the tolerant answer
parser, the shuffled control, and the F1 intervals (their point equals the plain F1)."""

from __future__ import annotations

import pytest

from app.vlm_eval.answers import parse_answer, vocabulary
from app.vlm_eval.chat import check_destination, is_loopback
from app.vlm_eval.experiment import shuffled_order
from app.vlm_eval.prompts import instruction
from app.vlm_eval.scores import arm_intervals
from indexer.evaluation.prediction import f1_scores
from models.taxonomy import load_taxonomy


@pytest.fixture(scope="module")
def words() -> dict[str, str]:
    return vocabulary(load_taxonomy())


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ('{"labels": ["dent"], "zone": "3"}', {"dent"}),
        ('Sure!\n```json\n{"labels": ["Deep scratch", "DENT"]}\n```', {"deep_scratch", "dent"}),
        ('{"labels": "crack"}', {"crack"}),
    ],
)
def test_parser_reads_ids_names_fences_and_single_strings(words, text, labels):
    answer = parse_answer(text, words)
    assert answer is not None and set(answer.labels) == labels


@pytest.mark.parametrize("text", ["no json here", '{"labels": ["rust"]}', "{broken", ""])
def test_unrecognisable_answers_are_unparseable(words, text):
    assert parse_answer(text, words) is None


def test_instruction_lists_the_vocabulary():
    tax = load_taxonomy()
    text = instruction(tax)
    for lid in tax.damage_ids:
        assert f"- {lid}: {tax.label(lid).name('en')}" in text


def test_shuffled_control_never_gives_a_query_its_own_context():
    order = shuffled_order(7, seed=3)
    assert sorted(order) == list(range(7))
    assert all(order[i] != i for i in range(7))


def test_interval_point_equals_plain_f1_and_identical_arms_differ_by_zero():
    truths = [frozenset({"dent"}), frozenset({"crack"}), frozenset({"dent", "crack"})] * 4
    good = list(truths)
    bad = [frozenset({"dent"})] * 12
    groups = [f"g{i // 2}" for i in range(12)]
    out = arm_intervals(truths, groups, {"a": good, "b": bad}, [("a", "b"), ("b", "b")])
    rows = {(c["arm"], c["versus"], c["metric"]): c for c in out["comparisons"]}
    plain = f1_scores(truths, good).macro_f1 - f1_scores(truths, bad).macro_f1
    assert rows[("a", "b", "macro_f1")]["difference"] == pytest.approx(plain)
    assert rows[("a", "b", "macro_f1")]["low"] > 0
    same = rows[("b", "b", "macro_f1")]
    assert same["low"] == same["high"] == 0


def test_photos_stay_on_this_machine_unless_allowed():
    assert is_loopback("http://127.0.0.1:8000/v1") and is_loopback("http://localhost:11434/v1")
    check_destination("http://[::1]:8000/v1", allow_remote=False)
    with pytest.raises(Exception, match="--allow-remote-images"):
        check_destination("https://api.example.com/v1", allow_remote=False)
    check_destination("https://api.example.com/v1", allow_remote=True)
