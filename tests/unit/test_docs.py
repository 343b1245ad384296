"""The technical overview: no code, no unmeasured figures, and it converts cleanly to Word."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OVERVIEW = ROOT / "docs" / "technical-overview.md"
MEASURED_DOCS = ("evaluation.md", "performance.md")

TITLE = "visrag — technical overview"
SECTIONS = [
    "The problem",
    "The data",
    "The pipeline",
    "Design decisions",
    "The service",
    "Using visrag from a VLM gateway",
    "Deployment",
    "Where the measured figures are",
]

# Numbers the overview may state without citing a measurement: they are design parameters or
# definitions, fixed by the design, not results. Anything else must sit in a paragraph that
# links to docs/evaluation.md or docs/performance.md.
DESIGN_PARAMETERS = {
    "1",  # k = 1 in the metric list; one process per GPU; one taxonomy...
    "3",  # k = 3
    "5",  # k = 5 (also the default k)
    "10",  # k = 10; zones 1-10
    "100",  # the largest k a request may ask for
    "16",  # ViT patch size (ViT-S/16, B/16, L/16); sides are multiples of it
    "224",  # the 224 x 224 square the stock preprocessing squashes to
    "448",  # default longer side of the aspect-preserving resize
    "0.6",  # default image weight of the hybrid fusion
    "80",  # 80/20 split
    "20",  # 80/20 split
    "8",  # raw labels 1-8 of the reference dataset
    "384",  # text embedding dimension of all-MiniLM-L6-v2
    "2",  # "at least two groups" for a label to appear on both sides
    # HTTP status codes named in the API description: protocol constants, not figures.
    "200",
    "401",
    "413",
    "415",
    "422",
    "429",
    "503",
}
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w])")


def _paragraphs() -> list[str]:
    return [p for p in re.split(r"\n\s*\n", OVERVIEW.read_text(encoding="utf-8")) if p.strip()]


def test_overview_has_no_code():
    text = OVERVIEW.read_text(encoding="utf-8")
    assert "```" not in text and "~~~" not in text
    assert "`" not in text, "inline code in a client document; write it in words"
    assert not re.search(r"^(?: {4}|\t)\S", text, flags=re.M), "indented code block"


def test_overview_states_only_design_parameters_or_cited_figures():
    offending = []
    for paragraph in _paragraphs():
        if paragraph.lstrip().startswith("#") or any(d in paragraph for d in MEASURED_DOCS):
            continue
        # Link targets and model names are not figures.
        prose = re.sub(r"\]\([^)]*\)", "]", paragraph)
        prose = re.sub(r"^\s*\d+\.\s", "", prose, flags=re.M)  # ordered-list markers
        for match in NUMBER.finditer(prose):
            if match.group() not in DESIGN_PARAMETERS:
                start = max(match.start() - 40, 0)
                offending.append(f"{match.group()!r} in …{prose[start : match.end() + 40]}…")
    assert not offending, "unmeasured or uncited figures:\n" + "\n".join(offending)


def test_overview_points_to_the_measured_figures():
    text = OVERVIEW.read_text(encoding="utf-8")
    for doc in MEASURED_DOCS:
        assert f"]({doc})" in text, f"no link to docs/{doc}"


def _pandoc() -> str:
    binary = shutil.which("pandoc")
    if binary is None:
        pytest.skip("pandoc is not installed")
    return binary


def test_overview_is_plain_prose_for_pandoc():
    ast = json.loads(
        subprocess.run(
            [_pandoc(), "--from=markdown", "--to=json", str(OVERVIEW)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    )
    kinds: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "t" in node:
                kinds.add(node["t"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(ast["blocks"])
    assert not kinds & {"Code", "CodeBlock", "RawBlock", "RawInline"}


def test_make_docx_runs_pandoc_on_the_overview():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    dry = subprocess.run(
        ["make", "-n", "-B", "docx"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert dry.returncode == 0, dry.stderr
    assert "pandoc" in dry.stdout and "docs/technical-overview.md" in dry.stdout


def test_overview_converts_to_a_word_document_with_its_headings(tmp_path):
    docx = pytest.importorskip("docx")
    pandoc = _pandoc()
    out = tmp_path / "technical-overview.docx"
    if shutil.which("make"):
        command = ["make", "-s", "-B", "docx", f"DOCX={out}", f"PANDOC={pandoc}"]
    else:
        command = [pandoc, "--from=markdown", "--to=docx", "--output", str(out), str(OVERVIEW)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert not result.stderr.strip(), f"pandoc warned: {result.stderr}"

    document = docx.Document(str(out))
    headings = [
        (p.style.name, p.text.strip())
        for p in document.paragraphs
        if p.style.name.startswith("Heading")
    ]
    assert ("Heading 1", TITLE) in headings
    level_two = [text for style, text in headings if style == "Heading 2"]
    assert level_two == SECTIONS
    body = "\n".join(p.text for p in document.paragraphs)
    assert "DINOv3" in body and "/context" in body
    assert len(body) > 4000  # the prose arrived, not just the headings
