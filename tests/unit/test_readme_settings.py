"""The README's configuration table is the one generated from `Settings`: it cannot drift."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
TOOL = ROOT / "tools" / "settings_table.py"


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("settings_table", TOOL)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_table_is_generated_from_settings(tool):
    have = tool.current_table(README.read_text(encoding="utf-8"))
    assert have == tool.render_table(), (
        "README configuration table is stale: python tools/settings_table.py --write README.md"
    )


def test_table_lists_every_variable_with_its_default(tool):
    rows = tool.render_table().splitlines()[2:]
    assert len(rows) == len(Settings.model_fields)
    by_name = {row.split("|")[1].strip(" `"): row for row in rows}
    assert set(by_name) == {f"VISRAG_{f.upper()}" for f in Settings.model_fields}
    assert "`8000`" in by_name["VISRAG_PORT"]
    assert "`auto` / `cpu` / `cuda`" in by_name["VISRAG_DEVICE"]
    assert "unset" in by_name["VISRAG_IMAGE_MODEL"]


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), "--check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_fails_on_a_drifted_table_and_write_repairs_it(tool, tmp_path):
    doc = tmp_path / "README.md"
    fresh = f"# x\n\n{tool.START}\n{tool.render_table()}{tool.END}\n\nafter\n"
    doc.write_text(fresh.replace("`8000`", "`8080`"), encoding="utf-8")
    result = _check(doc)
    assert result.returncode == 1
    assert "stale" in result.stderr and "8080" in result.stderr

    tool.main(["--write", str(doc)])
    assert doc.read_text(encoding="utf-8") == fresh
    assert _check(doc).returncode == 0


def test_check_reports_missing_markers(tmp_path):
    doc = tmp_path / "README.md"
    doc.write_text("# no table here\n", encoding="utf-8")
    result = _check(doc)
    assert result.returncode == 2
    assert "settings-table:start" in result.stderr
