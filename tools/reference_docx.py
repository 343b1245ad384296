"""Write the Word reference document that ``make docx`` passes to pandoc (``--reference-doc``).

Pandoc's own default reference, with these changes: A4 paper with 2.5 cm margins (pandoc's default
is US Letter), body text at 11 pt and table cells at 10 pt, the table style "Table" drawn with thin
borders on every cell and a shaded, bold header row repeated on each page, and rows kept from
breaking across pages. Only the standard
library and pandoc are needed; the output is byte-for-byte reproducible.

    python tools/reference_docx.py --out docs/reference.docx
    python tools/reference_docx.py --keep-rows docs/technical-overview.es.docx   # after pandoc
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import zipfile
from pathlib import Path

# A4 in twentieths of a point; 2.5 cm margins leave a text width of 16.0 cm (6.30 in).
A4_TWIPS = (11906, 16838)
MARGIN_TWIPS = 1418
TEXT_WIDTH_IN = (A4_TWIPS[0] - 2 * MARGIN_TWIPS) / 1440
BODY_HALF_POINTS = 22  # 11 pt
COMPACT_HALF_POINTS = 20  # 10 pt: table cells and tight lists (pandoc's "Compact" paragraphs)
BORDER = '<w:{side} w:val="single" w:sz="4" w:space="0" w:color="7F7F7F"/>'

SECTION = (
    f'<w:sectPr><w:pgSz w:w="{A4_TWIPS[0]}" w:h="{A4_TWIPS[1]}"/>'
    f'<w:pgMar w:top="{MARGIN_TWIPS}" w:right="{MARGIN_TWIPS}" w:bottom="{MARGIN_TWIPS}" '
    f'w:left="{MARGIN_TWIPS}" w:header="709" w:footer="709" w:gutter="0"/></w:sectPr>'
)
TABLE_BORDERS = (
    "<w:tblBorders>"
    + "".join(
        BORDER.format(side=s) for s in ("top", "left", "bottom", "right", "insideH", "insideV")
    )
    + "</w:tblBorders>"
)
HEADER_ROW = (
    '<w:tblStylePr w:type="firstRow"><w:rPr><w:b/></w:rPr>'
    "<w:trPr><w:cantSplit/><w:tblHeader/></w:trPr>"
    '<w:tcPr><w:shd w:val="clear" w:color="auto" w:fill="E7EDF5"/><w:vAlign w:val="bottom"/>'
    "</w:tcPr></w:tblStylePr>"
)


def default_reference(pandoc: str) -> bytes:
    """Pandoc's built-in reference.docx."""
    return subprocess.run(
        [pandoc, "--print-default-data-file", "reference.docx"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout


def patch_document(xml: str) -> str:
    """A4 portrait with 2.5 cm margins for the body's section."""
    xml, n = re.subn(r"<w:sectPr\s*/>|<w:sectPr\b.*?</w:sectPr>", SECTION, xml, flags=re.S)
    if n == 0:
        xml = xml.replace("</w:body>", SECTION + "</w:body>")
    return xml


def patch_styles(xml: str) -> str:
    """Body text 11 pt; the 'Table' style bordered, its header row shaded, bold and repeated."""
    xml = re.sub(
        r'(<w:rPrDefault>.*?<w:sz w:val=")\d+(")',
        rf"\g<1>{BODY_HALF_POINTS}\2",
        xml,
        count=1,
        flags=re.S,
    )
    start = xml.index('w:styleId="Table"')
    end = xml.index("</w:style>", start)
    style = xml[start:end]
    style = style.replace("</w:tblPr>", TABLE_BORDERS + "</w:tblPr>", 1)
    style = re.sub(
        r'<w:tblStylePr w:type="firstRow">.*?</w:tblStylePr>',
        HEADER_ROW,
        style,
        count=1,
        flags=re.S,
    )
    if "<w:trPr>" not in style.split("<w:tblStylePr")[0]:
        style = style.replace("<w:tblStylePr", "<w:trPr><w:cantSplit/></w:trPr><w:tblStylePr", 1)
    xml = xml[:start] + style + xml[end:]
    compact = xml.index('w:styleId="Compact"')
    close = xml.index("</w:style>", compact)
    return xml[:close] + f'<w:rPr><w:sz w:val="{COMPACT_HALF_POINTS}"/></w:rPr>' + xml[close:]


def build(reference: bytes) -> bytes:
    """The patched reference document, written with fixed timestamps (reproducible bytes)."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(reference)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in sorted(src.infolist(), key=lambda i: i.filename):
            data = src.read(info.filename)
            if info.filename == "word/document.xml":
                data = patch_document(data.decode("utf-8")).encode("utf-8")
            elif info.filename == "word/styles.xml":
                data = patch_styles(data.decode("utf-8")).encode("utf-8")
            entry = zipfile.ZipInfo(info.filename, date_time=(2026, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(entry, data)
    return out.getvalue()


def keep_rows_whole(docx: Path) -> None:
    """Mark every table row of a built document 'cannot split across pages'.

    Word and LibreOffice do not both honour that property from a table style, so ``make docx``
    sets it on each row of pandoc's output.
    """
    data = docx.read_bytes()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == "word/document.xml":
                xml = body.decode("utf-8")
                xml = re.sub(r"<w:tr>(?!\s*<w:trPr>)", "<w:tr><w:trPr><w:cantSplit/></w:trPr>", xml)
                xml = re.sub(
                    r"<w:tr>(\s*)<w:trPr>(?!<w:cantSplit)", r"<w:tr>\1<w:trPr><w:cantSplit/>", xml
                )
                body = xml.encode("utf-8")
            dst.writestr(info, body, compress_type=zipfile.ZIP_DEFLATED)
    docx.write_bytes(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the reference document here")
    parser.add_argument("--pandoc", default="pandoc")
    parser.add_argument(
        "--keep-rows", type=Path, metavar="DOCX", help="post-process a built document in place"
    )
    args = parser.parse_args()
    if args.keep_rows is not None:
        keep_rows_whole(args.keep_rows)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(build(default_reference(args.pandoc)))


if __name__ == "__main__":
    main()
