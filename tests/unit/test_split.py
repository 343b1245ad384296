from __future__ import annotations

import random
from pathlib import Path

import pytest
from readback import assert_same_records

from indexer.readers.dataset import read_dataset
from indexer.readers.records import Record
from indexer.split.splitter import SplitError, split_dataset, write_split
from indexer.synthetic.generator import generate_dataset


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gen500")
    generate_dataset(root, 500, seed=7, image_size=(48, 36))
    return root


@pytest.fixture(scope="module")
def scan500(generated: Path):
    from models.taxonomy import load_taxonomy

    return read_dataset(generated, taxonomy=load_taxonomy(), group_by="capture")


def _rec(i: int, labels: dict[str, int], group: str, zone: str = "hood_center") -> Record:
    return Record(
        id=f"r{i:03d}",
        image_path=Path(f"/data/r{i:03d}.jpg"),
        width=10,
        height=10,
        labels=labels,
        zone=zone,
        group=group,
    )


def test_same_records_and_seed_give_byte_identical_files(scan500, tmp_path: Path):
    records = list(scan500.records)
    shuffled = records[::-1]
    random.Random(5).shuffle(shuffled)
    write_split(split_dataset(records, seed=11), tmp_path / "a")
    write_split(split_dataset(shuffled, seed=11), tmp_path / "b")
    for name in ("train.jsonl", "test.jsonl", "split_report.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    write_split(split_dataset(records, seed=12), tmp_path / "c")
    assert (tmp_path / "a" / "test.jsonl").read_bytes() != (
        tmp_path / "c" / "test.jsonl"
    ).read_bytes()


def test_per_label_balance_and_groups_on_a_generated_multilabel_set(scan500):
    assert sum(len(r.labels) > 1 for r in scan500.records) > 50  # really multi-label
    result = split_dataset(scan500.records, test_size=0.2, seed=42)
    report = result.report
    assert abs(report["images"]["test_fraction"] - 0.2) <= 0.02
    assert report["largest_deviation"]["value"] <= 0.1
    frequent = report["largest_deviation_frequent"]
    assert frequent["value"] <= report["largest_deviation"]["value"]
    assert frequent["key"] in report["labels"] and frequent["min_images"] == 20
    # the reported deviations are the real ones, recomputed from the two sides
    for label, entry in report["labels"].items():
        if label == "no_damage":
            in_test = sum(not r.labels for r in result.test)
            total = in_test + sum(not r.labels for r in result.train)
        else:
            in_test = sum(label in r.labels for r in result.test)
            total = in_test + sum(label in r.labels for r in result.train)
        assert entry["images"]["test"] == in_test
        assert entry["deviation"] == pytest.approx(abs(in_test / total - 0.2), abs=1e-6)
        assert entry["deviation"] <= report["largest_deviation"]["value"]
    assert report["largest_zone_deviation"]["value"] <= 0.1
    # no group spans both sides
    train_groups = {r.group for r in result.train}
    test_groups = {r.group for r in result.test}
    assert not train_groups & test_groups
    assert report["groups"]["total"] == len(train_groups | test_groups) < 500


def test_every_label_with_two_groups_lands_on_both_sides():
    records = [_rec(i, {"surface_scratch": 1}, f"g{i}") for i in range(40)]
    records += [_rec(40, {"crack": 1}, "rare-a"), _rec(41, {"crack": 2}, "rare-b")]
    records += [_rec(42, {"dent": 1}, "lonely"), _rec(43, {"dent": 1}, "lonely")]
    for seed in range(5):
        result = split_dataset(records, test_size=0.1, seed=seed)
        sides = [{k for r in side for k in r.labels} for side in (result.train, result.test)]
        assert "crack" in sides[0] and "crack" in sides[1]
        assert result.report["labels_missing_from_a_side"] == []
        assert result.report["labels_in_one_group_only"] == ["dent"]
        lonely = {
            id(side) for side in (result.train, result.test) for r in side if r.group == "lonely"
        }
        assert len(lonely) == 1


def test_split_files_read_back_as_the_same_records(scan500, tmp_path: Path, taxonomy):
    result = split_dataset(scan500.records, seed=3)
    paths = write_split(result, tmp_path / "split")
    for side, path in ((result.train, paths["train"]), (result.test, paths["test"])):
        again = read_dataset(path, taxonomy=taxonomy)
        assert again.problems == []
        assert_same_records(again.records, side)
    first = paths["test"].read_text("utf-8").splitlines()[0]
    assert '"image": "../../' in first  # relative to the split directory


def test_bad_arguments_are_refused():
    records = [_rec(i, {}, "one") for i in range(3)]
    with pytest.raises(SplitError, match="two groups"):
        split_dataset(records)
    with pytest.raises(SplitError, match="test_size"):
        split_dataset([_rec(1, {}, "a"), _rec(2, {}, "b")], test_size=1.0)
