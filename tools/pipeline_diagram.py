"""Draw the pipeline diagram of the technical overview (docs/pipeline.<lang>.png).

The source of the figure is this file: ``make docs`` runs it and pandoc embeds the PNGs. The
generated PNGs are committed so the documents build where matplotlib is missing. The boxes carry
the author's step numbers (00, 01, 03, 04, 05); the figure is drawn at the page's text width, so
its smallest text prints at ``DETAIL_PT`` (7 pt) in Word. matplotlib is imported by ``draw`` only,
so the sizes can be read without it.

    python tools/pipeline_diagram.py --lang es --out docs/pipeline.es.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

# The figure is drawn at the Word page's text width (A4 with 2.5 cm margins: 6.30 in, see
# tools/reference_docx.py), so pandoc embeds it at 100 % and these are the printed sizes.
FIG_WIDTH_IN = 6.25
TITLE_PT, DETAIL_PT, BAND_PT = 7.5, 7.0, 8.5
DPI = 300

# (title, detail) per box. Offline row first (the author's scripts 00 -> 05), then the request path.
LABELS = {
    "en": {
        "offline": "Offline: building the reference collection (steps 00 to 05)",
        "online": "On each request",
        "steps": [
            ("Curated\ndataset", "photos +\nexpert polygons"),
            ("00\nAnalysis", "labels, zones,\ndefects per photo"),
            ("01\n80/20 split", "train / test,\nbalanced by\nlabel"),
            ("03\nEmbedding", "hybrid: DINOv3\nimage + MiniLM\ntext"),
            ("04\nFAISS index", "vectors,\ncatalogue,\nmanifest"),
            ("05\nEvaluation", "test photos,\nbaselines"),
        ],
        "request": [
            ("Client\nphoto", "sent by the\nVLM gateway"),
            ("Retrieval\nservice", "image vector,\nindex search"),
            ("Similar\ncases", "verified labels,\nzone, similarity"),
            ("Context\nblock", "cases and label\nestimates"),
            ("VLM\n", "answers with the\nphoto and evidence"),
        ],
        "loads": "loads",
    },
    "es": {
        "offline": "Fuera de línea: construcción de la colección de referencia (pasos 00 a 05)",
        "online": "En cada petición",
        "steps": [
            ("Dataset\ncurado", "fotos + polígonos\nde expertos"),
            ("00\nAnálisis", "etiquetas, zonas,\ndefectos por foto"),
            ("01\nDivisión 80/20", "entrenamiento /\nprueba, por\netiquetas"),
            ("03\nEmbedding", "híbrido: imagen\nDINOv3 + texto\nMiniLM"),
            ("04\nÍndice FAISS", "vectores,\ncatálogo,\nmanifiesto"),
            ("05\nEvaluación", "fotos de prueba,\nlíneas base"),
        ],
        "request": [
            ("Foto del\ncliente", "la envía la\npasarela del VLM"),
            ("Servicio de\nrecuperación", "vector de imagen,\nbúsqueda"),
            ("Casos\nsimilares", "etiquetas verificadas,\nzona, similitud"),
            ("Bloque de\ncontexto", "casos y estimación\nde etiquetas"),
            ("VLM\n", "responde con la\nfoto y la evidencia"),
        ],
        "loads": "carga",
    },
}

GAP = 0.09
BOX_H = 0.78
OFFLINE_COLOUR, ONLINE_COLOUR = "#dbe8f5", "#e3f1df"


def _box(ax, x: float, y: float, w: float, title: str, detail: str, colour: str) -> None:
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(
        FancyBboxPatch(
            (x, y),
            w,
            BOX_H,
            boxstyle="round,pad=0.0,rounding_size=0.06",
            facecolor=colour,
            edgecolor="#34495e",
            linewidth=0.8,
        )
    )
    ax.text(
        x + w / 2,
        y + BOX_H - 0.05,
        title,
        ha="center",
        va="top",
        fontsize=TITLE_PT,
        fontweight="bold",
        color="#1b2631",
        linespacing=1.1,
    )
    ax.text(
        x + w / 2,
        y + BOX_H - 0.33,
        detail,
        ha="center",
        va="top",
        fontsize=DETAIL_PT,
        color="#2c3e50",
        linespacing=1.15,
    )


def _arrow(ax, start: tuple[float, float], end: tuple[float, float], **style) -> None:
    from matplotlib.patches import FancyArrowPatch

    ax.add_patch(
        FancyArrowPatch(
            start, end, arrowstyle="-|>", mutation_scale=8, color="#34495e", linewidth=0.9, **style
        )
    )


def draw(lang: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = LABELS[lang]
    steps, request = labels["steps"], labels["request"]
    width = FIG_WIDTH_IN
    height = 2.45
    # axes in inches: 1 data unit = 1 inch, so font sizes and box sizes agree on paper
    fig = plt.figure(figsize=(width, height), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")

    margin = 0.03
    usable = width - 2 * margin
    top, bottom = 1.38, 0.05
    ax.text(
        margin,
        top + BOX_H + 0.13,
        labels["offline"],
        fontsize=BAND_PT,
        fontweight="bold",
        color="#1f4e79",
        va="center",
    )
    w_off = (usable - (len(steps) - 1) * GAP) / len(steps)
    for i, (title, detail) in enumerate(steps):
        x = margin + i * (w_off + GAP)
        _box(ax, x, top, w_off, title, detail, OFFLINE_COLOUR)
        if i:
            _arrow(ax, (x - GAP, top + BOX_H / 2), (x, top + BOX_H / 2))

    ax.text(
        margin,
        bottom + BOX_H + 0.13,
        labels["online"],
        fontsize=BAND_PT,
        fontweight="bold",
        color="#2e6b30",
        va="center",
    )
    w_on = (usable - (len(request) - 1) * GAP) / len(request)
    for i, (title, detail) in enumerate(request):
        x = margin + i * (w_on + GAP)
        _box(ax, x, bottom, w_on, title, detail, ONLINE_COLOUR)
        if i:
            _arrow(ax, (x - GAP, bottom + BOX_H / 2), (x, bottom + BOX_H / 2))

    # The index (04, 5th offline box) is loaded by the service (2nd request box).
    index_x = margin + 4 * (w_off + GAP) + w_off / 2
    service_x = margin + 1 * (w_on + GAP) + w_on * 0.75
    _arrow(ax, (index_x, top), (service_x, bottom + BOX_H), linestyle="--")
    ax.text(
        (index_x + service_x) / 2,
        (top + bottom + BOX_H) / 2 + 0.02,
        labels["loads"],
        fontsize=DETAIL_PT,
        style="italic",
        color="#34495e",
        ha="center",
        va="center",
        bbox={"facecolor": "white", "edgecolor": "none", "pad": 1},
    )

    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, facecolor="white", metadata={"Software": None})
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lang", choices=sorted(LABELS), required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    draw(args.lang, args.out)


if __name__ == "__main__":
    main()
