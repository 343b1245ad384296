"""Draw the pipeline diagram of the technical overview (docs/pipeline.<lang>.png).

The source of the figure is this file: ``make docs`` runs it and pandoc embeds the PNGs. The
generated PNGs are committed so the documents build where matplotlib is missing.

    python tools/pipeline_diagram.py --lang es --out docs/pipeline.es.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

# (title, detail) per box. Offline row first, then the request path.
LABELS = {
    "en": {
        "offline": "Offline: building the reference collection",
        "online": "On each request",
        "steps": [
            ("Curated dataset", "photos + expert\npolygons"),
            ("Analysis", "labels, zones,\nproblems found"),
            ("80/20 split", "label- and\ngroup-aware"),
            ("Hybrid embedding", "DINOv3 image +\ndescription text"),
            ("Index", "vectors, catalogue,\nmanifest"),
            ("Evaluation", "held-out images,\nbaselines"),
        ],
        "request": [
            ("Client photo", "via the VLM\ngateway"),
            ("visrag service", "image vector,\nsearch the index"),
            ("Similar cases", "labels, zone,\nsimilarity"),
            ("Context block", "reference cases\nfor the prompt"),
            ("VLM", "judges the photo\nwith the evidence"),
        ],
        "loads": "loads",
    },
    "es": {
        "offline": "Fuera de línea: construcción de la colección de referencia",
        "online": "En cada petición",
        "steps": [
            ("Dataset curado", "fotos + polígonos\nde expertos"),
            ("Análisis", "etiquetas, zonas,\nincidencias"),
            ("División 80/20", "por etiquetas\ny por grupos"),
            ("Embedding híbrido", "imagen DINOv3 +\ntexto descriptivo"),
            ("Índice", "vectores, catálogo,\nmanifiesto"),
            ("Evaluación", "imágenes reservadas,\nlíneas base"),
        ],
        "request": [
            ("Foto del cliente", "a través de la\npasarela del VLM"),
            ("Servicio visrag", "vector de imagen,\nbúsqueda"),
            ("Casos similares", "etiquetas, zona,\nsimilitud"),
            ("Bloque de contexto", "casos de referencia\npara el prompt"),
            ("VLM", "evalúa la foto\ncon la evidencia"),
        ],
        "loads": "carga",
    },
}

BOX_W, BOX_H, GAP = 2.4, 1.05, 0.45
OFFLINE_COLOUR, ONLINE_COLOUR = "#dbe8f5", "#e3f1df"


def _box(ax, x: float, y: float, title: str, detail: str, colour: str) -> None:
    ax.add_patch(
        FancyBboxPatch(
            (x, y),
            BOX_W,
            BOX_H,
            boxstyle="round,pad=0.02,rounding_size=0.12",
            facecolor=colour,
            edgecolor="#34495e",
            linewidth=1.2,
        )
    )
    ax.text(
        x + BOX_W / 2,
        y + BOX_H - 0.28,
        title,
        ha="center",
        va="center",
        fontsize=10,
        fontweight="bold",
        color="#1b2631",
    )
    ax.text(
        x + BOX_W / 2,
        y + 0.36,
        detail,
        ha="center",
        va="center",
        fontsize=8.5,
        color="#2c3e50",
        linespacing=1.25,
    )


def _arrow(ax, start: tuple[float, float], end: tuple[float, float], **style) -> None:
    ax.add_patch(
        FancyArrowPatch(
            start, end, arrowstyle="-|>", mutation_scale=14, color="#34495e", linewidth=1.3, **style
        )
    )


def draw(lang: str, out: Path) -> None:
    labels = LABELS[lang]
    steps, request = labels["steps"], labels["request"]
    width = len(steps) * BOX_W + (len(steps) - 1) * GAP
    fig, ax = plt.subplots(figsize=(14, 4.6), dpi=150)
    ax.set_xlim(-0.3, width + 0.3)
    ax.set_ylim(0.35, 4.9)
    ax.axis("off")

    top, bottom = 3.1, 0.55
    ax.text(
        0, top + BOX_H + 0.35, labels["offline"], fontsize=11.5, fontweight="bold", color="#1f4e79"
    )
    for i, (title, detail) in enumerate(steps):
        x = i * (BOX_W + GAP)
        _box(ax, x, top, title, detail, OFFLINE_COLOUR)
        if i:
            _arrow(ax, (x - GAP, top + BOX_H / 2), (x, top + BOX_H / 2))

    ax.text(
        0,
        bottom + BOX_H + 0.35,
        labels["online"],
        fontsize=11.5,
        fontweight="bold",
        color="#2e6b30",
    )
    step = (width - BOX_W) / (len(request) - 1)
    for i, (title, detail) in enumerate(request):
        x = i * step
        _box(ax, x, bottom, title, detail, ONLINE_COLOUR)
        if i:
            _arrow(ax, (x - step + BOX_W, bottom + BOX_H / 2), (x, bottom + BOX_H / 2))

    # The index (5th offline box) is loaded by the service (2nd request box).
    index_x = 4 * (BOX_W + GAP) + BOX_W / 2
    service_x = step + BOX_W / 2
    _arrow(
        ax,
        (index_x, top),
        (service_x + 0.4, bottom + BOX_H),
        connectionstyle="arc3,rad=0.0",
        linestyle="--",
    )
    ax.text(
        (index_x + service_x + 0.4) / 2,
        (top + bottom + BOX_H) / 2,
        labels["loads"],
        fontsize=9,
        style="italic",
        color="#34495e",
        ha="center",
        va="center",
        bbox={"facecolor": "white", "edgecolor": "none", "pad": 2},
    )

    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight", facecolor="white", metadata={"Software": None})
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lang", choices=sorted(LABELS), required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    draw(args.lang, args.out)


if __name__ == "__main__":
    main()
