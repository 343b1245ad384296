"""Planted regions for the region tests (tests/integration/test_regions.py, tests/api/
test_regions_api.py): an indexed region's pixels pasted, aligned to whole patches after the
resize, into a grey photo at another place; the largest single-defect regions to plant; and
whether a hit found the planted region."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from models.imaging import target_size


def build_synthetic(root: Path, tiny_dinov3, text_encoder, taxonomy, *, n, seed, size, image_size):
    """``n`` synthetic photos under ``root/data`` indexed (with patch regions) into ``root/art``
    by the tiny DINOv3 at ``image_size``: (the encoder, the build report)."""
    from indexer.build.pipeline import build_index
    from indexer.synthetic.generator import generate_dataset
    from models.image_encoder import load_image_encoder

    generate_dataset(root / "data", n, seed=seed, image_size=size)
    encoder = load_image_encoder(tiny_dinov3, device="cpu", image_size=image_size)
    report = build_index(
        root / "data",
        root / "art",
        image_encoder=encoder,
        text_encoder=text_encoder,
        taxonomy=taxonomy,
        progress=False,
    )
    return encoder, report


def planted(artifacts, region, size: tuple[int, int], image_size: int, patch: int = 16):
    """A grey ``size`` photo holding ``region``'s patch-aligned pixels moved by whole patches:
    (the photo, the pasted box ``x, y, w, h``, the region's polygon at its new place)."""
    tw, th = target_size(*size, image_size=image_size, patch_size=patch)
    cols, rows = tw // patch, th // patch
    cw, ch = size[0] / cols, size[1] / rows
    x, y, w, h = region.box
    c0, r0 = int(x // cw), int(y // ch)
    nc, nr = int((x + w) // cw) - c0 + 1, int((y + h) // ch) - r0 + 1
    dc = (c0 + cols // 2) % (cols - nc + 1)
    dr = (r0 + rows // 2) % (rows - nr + 1)
    source = Image.open(artifacts.image_file(artifacts.items[region.item])).convert("RGB")
    block = source.crop((c0 * cw, r0 * ch, (c0 + nc) * cw, (r0 + nr) * ch))
    photo = Image.new("RGB", size, (128, 128, 128))
    photo.paste(block, (round(dc * cw), round(dr * ch)))
    dx, dy = (dc - c0) * cw, (dr - r0) * ch
    polygon = tuple((px + dx, py + dy) for px, py in region.polygon)
    return photo, (dc * cw, dr * ch, nc * cw, nr * ch), polygon


def largest_single_regions(artifacts, n: int):
    """The ``n`` largest regions of one defect each (clusters left out)."""
    singles = [r for r in artifacts.regions.regions if r.members == 1]
    return sorted(singles, key=lambda r: -r.area)[:n]


def is_or_holds(hit_id: str, hit_item: str, hit_box: Sequence[float], region, artifacts) -> bool:
    """The hit is the region, or a cluster region of the same photo whose box holds it."""
    if hit_id == region.id:
        return True
    x, y, w, h = region.box
    hx, hy, hw, hh = hit_box
    same_item = hit_item == artifacts.items[region.item].id
    return same_item and hx <= x and hy <= y and hx + hw >= x + w and hy + hh >= y + h
