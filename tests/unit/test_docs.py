"""The client documents: no code, no dead links, no VLM names, measured figures only, and they
convert to Word (A4, bordered tables, the pipeline diagram embedded and legible)."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import struct
import subprocess
import sys
import typing
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
OVERVIEWS = {"es": DOCS / "technical-overview.es.md", "en": DOCS / "technical-overview.md"}
VLM_SECTIONS = {"es": DOCS / "vlm-section.es.md", "en": DOCS / "vlm-section.md"}
ANNEXES = {"es": DOCS / "prototype-to-service.es.md", "en": DOCS / "prototype-to-service.md"}
CLIENT_DOCS = [*OVERVIEWS.values(), *VLM_SECTIONS.values(), *ANNEXES.values()]
MEASURED_DOCS = (DOCS / "evaluation.md",)  # the only source of the overview's figures
OVERVIEW_MAX_WORDS = 2000
W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"

# The author asked for no list of VLMs: no product or family names in the client documents.
VLM_NAMES = (
    "qwen",
    "llava",
    "gpt-4",
    "gpt4",
    "openai",
    "gemini",
    "claude",
    "anthropic",
    "ollama",
    "pixtral",
    "idefics",
    "internvl",
    "molmo",
    "phi-3",
    "mistral",
    "minicpm",
    "cogvlm",
)
# "llama" is also Spanish for "calls": the model family is named with its version or "vision"
VLM_PATTERNS = (r"\bl+ama[\s-]?\d", r"\bllama[\s-]?vision", r"\bllama\b(?!\s+(?:a|al|la|el)\b)")
VLM_SECTION_MAX_WORDS = 600
NUMBERED_SECTION = re.compile(r"^#{1,6} (\d+)\. ", flags=re.M)
DECIMAL = re.compile(r"(?<![\w.,])\d+[.,]\d+(?![\w])")
FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", flags=re.S)


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _body(path: Path) -> str:
    """The document without its YAML block and arXiv identifiers (not figures)."""
    return re.sub(r"arXiv:\d+\.\d+", "arXiv", FRONT_MATTER.sub("", _text(path)))


def _pandoc() -> str:
    binary = shutil.which("pandoc")
    if binary is None:
        pytest.skip("pandoc is not installed")
    return binary


def _ast_nodes(path: Path) -> list[dict]:
    ast = json.loads(
        subprocess.run(
            [_pandoc(), "--from=markdown", "--to=json", str(path)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    )
    nodes: list[dict] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "t" in node:
                nodes.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(ast["blocks"])
    return nodes


@pytest.mark.parametrize("path", CLIENT_DOCS, ids=lambda p: p.name)
def test_client_document_has_no_code(path):
    text = _text(path)
    assert "```" not in text and "~~~" not in text
    assert "`" not in text, "inline code in a client document; write it in words"
    assert not re.search(r"^(?: {4}|\t)[^\s\-\d]", text, flags=re.M), "indented code block"


@pytest.mark.parametrize("path", CLIENT_DOCS, ids=lambda p: p.name)
def test_client_document_has_no_links_to_markdown_files(path):
    assert not re.search(r"\]\([^)]*\.md\b", _text(path)), "a link to a .md file is dead in Word"


@pytest.mark.parametrize("path", CLIENT_DOCS, ids=lambda p: p.name)
def test_client_document_names_no_vlm(path):
    lowered = _text(path).lower()
    assert not [n for n in VLM_NAMES if re.search(rf"\b{re.escape(n)}\b", lowered)]
    assert not [p for p in VLM_PATTERNS if re.search(p, lowered)]


@pytest.mark.parametrize("path", VLM_SECTIONS.values(), ids=lambda p: p.name)
def test_vlm_section_is_short_and_has_no_figures(path):
    text = _text(path)
    assert len(text.split()) <= VLM_SECTION_MAX_WORDS
    assert not DECIMAL.search(text) and "%" not in text


def test_vlm_section_stands_alone():
    """Pasted into another document: it says what the service and the VLM are before using them,
    its parts are sub-headings, and it never names this project."""
    first = {lang: _text(p).split("\n\n")[1] for lang, p in VLM_SECTIONS.items()}
    assert "modelo de visión y lenguaje (VLM)" in first["es"]
    assert "vision-language model (VLM)" in first["en"]
    assert "servicio de recuperación" in first["es"] and "pasarela" in first["es"]
    assert "retrieval service" in first["en"] and "gateway" in first["en"]
    for path in VLM_SECTIONS.values():
        text = _text(path)
        assert len(re.findall(r"^### ", text, flags=re.M)) == 2 and "**" not in text
        assert "visrag" not in text.lower()
        assert "POST /context" in text  # introduced as the service's context operation


@pytest.mark.parametrize("path", OVERVIEWS.values(), ids=lambda p: p.name)
def test_overview_length(path):
    assert len(_text(path).split()) <= OVERVIEW_MAX_WORDS  # wc -w, tables and YAML included


@pytest.mark.parametrize(
    "path", [*OVERVIEWS.values(), *VLM_SECTIONS.values()], ids=lambda p: p.name
)
def test_client_documents_describe_the_system_not_an_audit_of_it(path):
    """The prototype's defects belong to the annex written for its author, not to the client."""
    lowered = _text(path).lower()
    for word in ("prototipo", "prototype", "pickle", "224", "leak", "fuga", "not yet evaluated"):
        assert word not in lowered, word


def test_both_languages_have_the_same_numbered_sections():
    numbers = {lang: NUMBERED_SECTION.findall(_text(p)) for lang, p in OVERVIEWS.items()}
    assert numbers["es"] == numbers["en"]
    assert numbers["es"] == [str(i) for i in range(1, len(numbers["es"]) + 1)]
    assert len(numbers["es"]) >= 8
    for lang, path in OVERVIEWS.items():
        meta = FRONT_MATTER.match(_text(path))
        assert meta, f"{lang}: no YAML block"
        assert all(f"\n{key}: " in meta.group(0) for key in ("title", "author", "date", "version"))
        refs = _text(path).split("\n# Refer")[-1]
        assert all(name in refs for name in ("DINOv3", "Faiss", "Sentence-BERT", "MiniLM"))
        # the author's step numbers, in order
        steps = re.findall(r"^\| (0\d),", _text(path), flags=re.M)
        assert steps == ["00", "01", "03", "04", "05"]
    steps = {lang: re.findall(r"^\d+\. ", _text(p), flags=re.M) for lang, p in VLM_SECTIONS.items()}
    assert steps["es"] == steps["en"] and steps["es"]


@pytest.mark.parametrize("path", OVERVIEWS.values(), ids=lambda p: p.name)
def test_overview_figures_are_the_measured_ones(path):
    """Every decimal figure of the overview is one of docs/evaluation.md's measured numbers, on
    the DINOv3 crop vectors; what has no measurement with real weights is said to be pending."""
    measured = "\n".join(_text(doc) for doc in MEASURED_DOCS)
    design = {"0.6", "0.4"}  # the fusion's image and text weights: settings, not results
    body = _body(path)
    stated = {m.replace(",", ".") for m in DECIMAL.findall(body)}
    assert stated, "the overview states no measured figure at all"
    assert not [f for f in sorted(stated - design) if f not in measured]
    assert "0.766" in stated and "0.854" in stated and "0.841" in stated  # image, probe, majority
    assert "[−0.113, −0.041]" in measured  # the image-vs-majority interval quoted in words
    lowered = body.lower()
    assert "pendiente" in lowered or "pending" in lowered
    # no speed figure (only random weights were timed) and no label-conditioned crop vectors
    assert "img/s" not in lowered and "imágenes por segundo" not in lowered
    assert "images per second" not in lowered and "qwen" not in lowered


@pytest.mark.parametrize("path", CLIENT_DOCS, ids=lambda p: p.name)
def test_client_document_is_plain_prose_for_pandoc(path):
    kinds = {node["t"] for node in _ast_nodes(path)}
    assert not kinds & {"Code", "CodeBlock", "RawBlock", "RawInline"}
    targets = [n["c"][2][0] for n in _ast_nodes(path) if n["t"] == "Link"]
    assert not [t for t in targets if t.split("#")[0].endswith(".md")]


def test_make_docs_regenerates_the_diagram_and_builds_every_docx():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    dry = subprocess.run(
        ["make", "-n", "-B", "docs"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert dry.returncode == 0, dry.stderr
    assert "tools/pipeline_diagram.py" in dry.stdout
    docx = subprocess.run(
        ["make", "-n", "-B", "docx"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert docx.returncode == 0, docx.stderr
    assert "pandoc --from=markdown --to=docx --resource-path=docs" in docx.stdout
    assert "tools/reference_docx.py" in docx.stdout and "--reference-doc=" in docx.stdout
    for path in CLIENT_DOCS:
        assert f"docs/{path.name}" in docx.stdout


def _api_modes() -> set[str]:
    from app.schemas import QueryForm

    return set(typing.get_args(QueryForm.model_fields["mode"].annotation))


def _xml(docx: Path, name: str) -> ElementTree.Element:
    with zipfile.ZipFile(docx) as z:
        return ElementTree.fromstring(z.read(name))


def _cells(table: ElementTree.Element) -> list[list[str]]:
    return [
        ["".join(t.text or "" for t in tc.iter(f"{W}t")).strip() for tc in tr.iter(f"{W}tc")]
        for tr in table.iter(f"{W}tr")
    ]


def _png_inches(data: bytes) -> float:
    """Width of a PNG in inches from its IHDR and pHYs chunks."""
    width = struct.unpack(">I", data[16:20])[0]
    at = data.index(b"pHYs")
    per_metre, _, unit = struct.unpack(">IIB", data[at + 4 : at + 13])
    assert unit == 1, "the PNG carries no physical size"
    return width / (per_metre * 0.0254)


@pytest.fixture(scope="module")
def word(tmp_path_factory) -> Path:
    """Every document built by ``make docx`` into a temporary directory."""
    pandoc = _pandoc()
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = tmp_path_factory.mktemp("docx")
    result = subprocess.run(
        [
            "make",
            "-s",
            "-B",
            "docx",
            f"DOCS_OUT={out}",
            f"PANDOC={pandoc}",
            f"PYTHON={sys.executable}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert not result.stderr.strip(), f"pandoc warned: {result.stderr}"
    return out


@pytest.mark.parametrize("source", CLIENT_DOCS, ids=lambda p: p.name)
def test_word_documents_are_a4_without_code_with_bordered_tables(word, source):
    docx = word / source.with_suffix(".docx").name
    document = _xml(docx, "word/document.xml")
    size = document.find(f".//{W}sectPr/{W}pgSz")
    assert size is not None and (size.get(f"{W}w"), size.get(f"{W}h")) == ("11906", "16838")
    styles = {e.get(f"{W}val") for e in document.iter(f"{W}pStyle")}
    styles |= {e.get(f"{W}val") for e in document.iter(f"{W}rStyle")}
    assert not styles & {"SourceCode", "VerbatimChar"}, "code in a Word document"
    # every table is drawn with borders: its own, or those of its style
    style_borders = {}
    for style in _xml(docx, "word/styles.xml").iter(f"{W}style"):
        borders = style.find(f"{W}tblPr/{W}tblBorders")
        if borders is not None:
            style_borders[style.get(f"{W}styleId")] = borders
    for table in document.iter(f"{W}tbl"):
        borders = table.find(f"{W}tblPr/{W}tblBorders")
        if borders is None:
            style = table.find(f"{W}tblPr/{W}tblStyle")
            borders = style_borders.get(style.get(f"{W}val") if style is not None else None)
        assert borders is not None, "a table without borders"
        drawn = {b.tag.removeprefix(W): b.get(f"{W}val") for b in borders}
        for side in ("top", "left", "bottom", "right", "insideH", "insideV"):
            assert drawn.get(side) not in (None, "none", "nil"), side
        assert all(tr.find(f"{W}trPr/{W}cantSplit") is not None for tr in table.iter(f"{W}tr")), (
            "a table row may break across pages"
        )


@pytest.mark.parametrize("lang", ["es", "en"])
def test_word_overview_embeds_a_legible_diagram_and_names_the_api_modes(word, lang):
    source = OVERVIEWS[lang]
    docx = word / source.with_suffix(".docx").name
    with zipfile.ZipFile(docx) as z:
        pngs = [
            z.read(n) for n in z.namelist() if n.startswith("word/media/") and n.endswith(".png")
        ]
        core = z.read("docProps/core.xml").decode("utf-8")
    assert len(pngs) == 1 and len(pngs[0]) > 10_000, "the diagram is not embedded"
    assert pngs[0] == (DOCS / f"pipeline.{lang}.png").read_bytes()
    document = _xml(docx, "word/document.xml")
    extent = document.find(
        ".//{http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing}extent"
    )
    printed_in = int(extent.get("cx")) / 914_400
    # the smallest text of the figure, as printed at the width Word gives the picture
    spec = importlib.util.spec_from_file_location(
        "pipeline_diagram", ROOT / "tools/pipeline_diagram.py"
    )
    diagram = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(diagram)
    scale = printed_in / _png_inches(pngs[0])
    assert diagram.DETAIL_PT * scale >= 7.0, (
        f"diagram text prints at {diagram.DETAIL_PT * scale:.1f} pt"
    )
    for step in ("00", "01", "03", "04", "05"):
        assert any(step in str(t) for t in diagram.LABELS[lang]["steps"])
    # the author, date and version of the YAML block reach the document
    assert "Carlos Atalaya" in core
    paragraphs = ["".join(t.text or "" for t in p.iter(f"{W}t")) for p in document.iter(f"{W}p")]
    assert any("1.0" in p and "2026" in p for p in paragraphs)
    headings = [
        p
        for p in document.iter(f"{W}p")
        if (s := p.find(f"{W}pPr/{W}pStyle")) is not None and s.get(f"{W}val") == "Heading1"
    ]
    assert len(headings) == len(NUMBERED_SECTION.findall(_text(source))) + 1  # + references
    tables = [_cells(t) for t in document.iter(f"{W}tbl")]
    assert len(tables) >= 4  # workflow, taxonomy, modes, results
    modes = [t for t in tables if t[0][0] in ("Modo", "Mode")]
    assert len(modes) == 1 and {row[0] for row in modes[0][1:]} == _api_modes()
    body = "\n".join(paragraphs)
    assert "DINOv3" in body and "cuatro modos" in body if lang == "es" else "four ways" in body


def test_word_vlm_sections_carry_the_context_operation(word):
    for source in VLM_SECTIONS.values():
        document = _xml(word / source.with_suffix(".docx").name, "word/document.xml")
        body = "\n".join(
            "".join(t.text or "" for t in p.iter(f"{W}t")) for p in document.iter(f"{W}p")
        )
        assert "/context" in body and len(body.split()) <= VLM_SECTION_MAX_WORDS


@pytest.mark.slow
def test_word_overview_fits_five_to_six_pages(word, tmp_path):
    """Rendered by LibreOffice where it is installed (never needed by the other tests)."""
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None:
        pytest.skip("LibreOffice is not installed")
    for source in OVERVIEWS.values():
        docx = word / source.with_suffix(".docx").name
        subprocess.run(
            [
                soffice,
                f"-env:UserInstallation=file://{tmp_path}/lo",
                "--headless",
                "--convert-to",
                "pdf",
                "--outdir",
                str(tmp_path),
                str(docx),
            ],
            capture_output=True,
            check=True,
            timeout=300,
        )
        pdf = (tmp_path / docx.with_suffix(".pdf").name).read_bytes()
        pages = len(re.findall(rb"/Type\s*/Page(?!s)", pdf))
        assert 4 <= pages <= 6, f"{source.name}: {pages} pages"
