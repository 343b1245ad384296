"""`visrag --help` as a new user reads it: pipeline order, plain labels, --taxonomy a path."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from app.cli import cli

COMMANDS = ["analyze", "split", "index", "evaluate", "serve", "demo", "generate", "model", "query"]
INDEX_COMMANDS = ["build", "import", "add", "remove", "ls", "verify"]
ALL = [
    *([c] for c in COMMANDS if c != "index"),
    *(["index", c] for c in INDEX_COMMANDS),
    ["model", "tiny"],
]


def help_of(*args: str) -> str:
    result = CliRunner(env={"COLUMNS": "160", "NO_COLOR": "1"}).invoke(cli, [*args, "--help"])
    assert result.exit_code == 0, result.output
    return result.output


def listed(page: str) -> list[str]:
    return re.findall(r"^│ ([a-z]+) ", page, flags=re.M)


def test_commands_are_listed_in_pipeline_order():
    assert listed(help_of()) == COMMANDS
    assert listed(help_of("index")) == INDEX_COMMANDS


@pytest.mark.parametrize("args", [[], ["index"], *ALL], ids=lambda a: " ".join(a) or "visrag")
def test_help_has_no_python_type_labels(args: list[str]):
    page = help_of(*args)
    for label in ("<bool>", "list[", "{"):
        assert label not in page, f"visrag {' '.join(args)} --help shows {label}"


@pytest.mark.parametrize("args", ALL, ids=" ".join)
def test_taxonomy_is_a_path_wherever_it_is_an_option(args: list[str]):
    rows = [ln for ln in help_of(*args).splitlines() if "--taxonomy" in ln]
    assert all("<path>" in row for row in rows), rows


def test_arguments_read_as_plain_names_in_usage():
    assert "Usage: visrag analyze [OPTIONS] DATASET" in help_of("analyze")
