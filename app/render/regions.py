"""Region answers and heatmaps on the wire, and in words a person reads (en, es).

:func:`region_out` / :func:`heatmap_out` turn the retriever's :class:`~indexer.query.RegionAnswer`
and :class:`~indexer.query.Heatmap` into the wire models (a crop URL per region, the scores as a
grid and a PNG overlay); :func:`region_lines` says them as sentences for the context block:
"lower left of the photo: resembles 3 verified dents (closest: case red-1, similarity 87%)".
"""

from __future__ import annotations

import base64
import io
from collections import Counter
from collections.abc import Callable, Sequence
from urllib.parse import quote

import numpy as np
from PIL import Image

from app.render.context import label_votes, similarity_pct
from indexer.query import DamageArea, Heatmap, Name, RegionAnswer, RegionHit
from visrag_client.schemas import (
    DamageAreaOut,
    HeatmapOut,
    LabelOut,
    PositionOut,
    RegionHitOut,
    RegionOut,
)

#: Pixels of the overlay PNG per patch (the page stretches it over the photo).
OVERLAY_CELL = 8
#: ``counted(label_id, n, language)``: the taxonomy's counted form, "3 dents", "3 abolladuras".
Counted = Callable[[str, int, str], str]

_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Damage regions",
        "resembles": "{where}: resembles {labels}",
        "verified": "{n} verified {rest}",
        "closest": " (closest: case {item}, similarity {pct}%)",
        "area": "{where}: looks like damage (score {peak}); resembles {labels}",
        "nothing": "No part of the photo resembles indexed damage above the catalogue's threshold.",
        "no_hits": "{where}: no indexed damage region to compare with",
        "and": " and ",
        "photo": "Photo {n}",
    },
    "es": {
        "title": "Zonas dañadas",
        "resembles": "{where}: se parece a {labels}",
        "verified": "{n} {rest}",
        "verified_tail": " de casos verificados",
        "closest": " (el más cercano: caso {item}, similitud {pct}%)",
        "area": "{where}: parece un daño (puntuación {peak}); se parece a {labels}",
        "nothing": "Ninguna parte de la foto se parece a daños indexados por encima del umbral "
        "del catálogo.",
        "no_hits": "{where}: no hay zonas dañadas indexadas con las que comparar",
        "and": " y ",
        "photo": "Foto {n}",
    },
}


def crop_url(hit: RegionHit, root_path: str = "") -> str:
    """The region's crop (``GET /items/{item}/regions/{suffix}/crop``; suffix: after ``#``)."""
    suffix = hit.id[len(hit.item) + 1 :] if hit.id.startswith(hit.item + "#") else hit.id
    return f"{root_path}/items/{quote(hit.item, safe='')}/regions/{quote(suffix, safe='')}/crop"


def region_hit_out(hit: RegionHit, *, root_path: str = "") -> RegionHitOut:
    return RegionHitOut(
        id=hit.id,
        rank=hit.rank,
        score=round(hit.score, 6),
        item=hit.item,
        labels=[
            LabelOut(
                id=lb.id, count=lb.count, name=lb.name.en, name_es=lb.name.es, coarse=lb.coarse
            )
            for lb in hit.labels
        ],
        box=[round(v, 2) for v in hit.box],
        polygon=[[round(x, 2), round(y, 2)] for x, y in hit.polygon],
        members=hit.members,
        zone=hit.zone,
        zone_name=hit.zone_name.en,
        crop_url=crop_url(hit, root_path),
    )


def _position(name: Name) -> PositionOut:
    return PositionOut(en=name.en, es=name.es)


def region_out(answer: RegionAnswer | None, *, root_path: str = "") -> RegionOut | None:
    if answer is None:
        return None
    return RegionOut(
        box=[round(v, 2) for v in answer.box],
        position=_position(answer.position),
        hits=[region_hit_out(h, root_path=root_path) for h in answer.hits],
    )


def heatmap_out(
    heat: Heatmap | None, *, language: str = "en", root_path: str = ""
) -> HeatmapOut | None:
    if heat is None:
        return None
    cols = heat.cols
    grid = [list(heat.scores[r * cols : (r + 1) * cols]) for r in range(heat.rows)]
    labels = [list(heat.labels[r * cols : (r + 1) * cols]) for r in range(heat.rows)]
    return HeatmapOut(
        rows=heat.rows,
        cols=cols,
        width=heat.width,
        height=heat.height,
        scores=[[round(v, 3) for v in row] for row in grid],
        labels=labels,
        peak=[round(v, 2) for v in heat.peak],
        peak_hit=None
        if heat.peak_hit is None
        else region_hit_out(heat.peak_hit, root_path=root_path),
        threshold=heat.threshold,
        calibration=dict(heat.calibration),
        areas=[_area_out(a, language=language, root_path=root_path) for a in heat.areas],
        overlay_png=overlay_png(heat),
    )


def _area_out(area: DamageArea, *, language: str, root_path: str) -> DamageAreaOut:
    return DamageAreaOut(
        box=[round(v, 2) for v in area.box],
        position=_position(area.position),
        patches=area.patches,
        peak=area.peak,
        votes=label_votes(area.votes, language=language),
        neighbours=[region_hit_out(h, root_path=root_path) for h in area.neighbours],
    )


def overlay_png(heat: Heatmap) -> str:
    """The damage scores as a transparent PNG (a data URL), ``OVERLAY_CELL`` pixels a patch:
    clear where a patch is below the threshold (or below 0 without one), from translucent cyan
    to opaque yellow towards the photo's highest score (colours that stand out on car paint,
    red ones included)."""
    scores = np.asarray(heat.scores, np.float32).reshape(heat.rows, heat.cols)
    low = heat.threshold if heat.threshold is not None else 0.0
    high = float(scores.max())
    if high <= low:
        t = np.zeros_like(scores)
    else:
        t = np.clip((scores - low) / (high - low), 0.0, 1.0)
    t = np.where(scores >= low, np.maximum(t, 0.15), 0.0)  # above the cut: always visible
    rgba = np.zeros((heat.rows, heat.cols, 4), np.uint8)
    rgba[..., 0] = (255 * t).astype(np.uint8)
    rgba[..., 1] = (200 + 30 * t).astype(np.uint8)
    rgba[..., 2] = (255 * (1.0 - t)).astype(np.uint8)
    rgba[..., 3] = np.where(t > 0, 90 + 130 * t, 0).astype(np.uint8)
    image = Image.fromarray(rgba, "RGBA").resize(
        (heat.cols * OVERLAY_CELL, heat.rows * OVERLAY_CELL), Image.Resampling.NEAREST
    )
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def region_lines(
    region: RegionAnswer | None,
    heat: Heatmap | None,
    *,
    language: str,
    counted: Counted,
) -> list[str]:
    """The query's region and the heatmap's areas as sentences; [] when neither was asked."""
    words = _WORDS.get(language, _WORDS["en"])
    lines = []
    if region is not None:
        lines.append(_resembles(region.position, region.hits, words, language, counted))
    if heat is not None:
        if not heat.areas and heat.threshold is not None:
            lines.append(words["nothing"])
        for area in heat.areas:
            labels = _labels(area.neighbours, words, language, counted)
            where = area.position.get(language)
            peak = f"{area.peak:.2f}"
            if language == "es":
                peak = peak.replace(".", ",")
            if labels is None:
                lines.append(_capital(words["no_hits"].format(where=where)))
            else:
                line = words["area"].format(where=where, peak=peak, labels=labels)
                lines.append(_capital(line + _closest(area.neighbours, words)))
    return lines


def region_title(language: str) -> str:
    return _WORDS.get(language, _WORDS["en"])["title"]


def photo_title(n: int, language: str) -> str:
    return _WORDS.get(language, _WORDS["en"])["photo"].format(n=n)


def _resembles(
    position: Name,
    hits: Sequence[RegionHit],
    words: dict[str, str],
    language: str,
    counted: Counted,
) -> str:
    where = position.get(language)
    labels = _labels(hits, words, language, counted)
    if labels is None:
        return _capital(words["no_hits"].format(where=where))
    line = words["resembles"].format(where=where, labels=labels)
    return _capital(line + _closest(hits, words))


def _labels(
    hits: Sequence[RegionHit], words: dict[str, str], language: str, counted: Counted
) -> str | None:
    """'3 verified dents and 1 verified crack' / '3 abolladuras y 1 grieta de casos
    verificados': each label counted over the regions, the taxonomy's counted forms."""
    tally: Counter[str] = Counter(lb.id for hit in hits for lb in hit.labels)
    if not tally:
        return None
    phrases = []
    for label, n in sorted(tally.items(), key=lambda kv: (-kv[1], kv[0])):
        number, _, rest = counted(label, n, language).partition(" ")
        phrases.append(words["verified"].format(n=number, rest=rest))
    joined = phrases[-1]
    if len(phrases) > 1:
        joined = ", ".join(phrases[:-1]) + words["and"] + phrases[-1]
    return joined + words.get("verified_tail", "")


def _closest(hits: Sequence[RegionHit], words: dict[str, str]) -> str:
    if not hits:
        return ""
    best = hits[0]
    return words["closest"].format(item=best.item, pct=similarity_pct(best.score))


def _capital(line: str) -> str:
    return line[:1].upper() + line[1:]
