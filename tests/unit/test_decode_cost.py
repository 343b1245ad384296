"""models.imaging.decode_cost is right for every Pillow mode: never below what a decode really
holds at its peak (else the decode budget is overrun: issue 27 D, 16-bit grey ~3.8x over), and
not far above it (else the budget admits needlessly few decodes). Each decode runs in a fresh
process, its peak RSS growth read from VmHWM after a reset."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SIDE = 1500

CHILD = """
import sys
from pathlib import Path
from models.imaging import decode_cost, decode_image

payload = Path(sys.argv[1]).read_bytes()
cost = decode_cost(payload, max_pixels=None)


def rss(name):
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return int(value.split()[0]) * 1024


Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
before = rss("VmRSS")
image = decode_image(payload, max_pixels=None)
assert image.mode == "RGB"
print(cost, rss("VmHWM") - before)
"""


def encoded(mode: str) -> bytes:
    """A SIDE x SIDE image of random pixels that Pillow decodes to ``mode``."""
    rng = np.random.default_rng(0)
    out = io.BytesIO()
    if mode == "I;16":
        Image.fromarray(rng.integers(0, 65535, (SIDE, SIDE), dtype=np.uint16)).save(out, "PNG")
    elif mode == "I;16B":
        data = rng.integers(0, 65535, (SIDE, SIDE), dtype=np.uint16).astype(">u2").tobytes()
        Image.frombytes("I;16B", (SIDE, SIDE), data).save(out, "TIFF")
    elif mode == "I":
        values = rng.integers(0, 1 << 20, (SIDE, SIDE), dtype=np.int32)
        Image.fromarray(values, mode="I").save(out, "TIFF")
    elif mode == "F":
        Image.fromarray(rng.random((SIDE, SIDE), dtype=np.float32), mode="F").save(out, "TIFF")
    elif mode == "P":
        grey = Image.fromarray(rng.integers(0, 255, (SIDE, SIDE), dtype=np.uint8), mode="L")
        grey.convert("P").save(out, "PNG", transparency=0)
    else:
        bands = len(mode)
        pixels = rng.integers(0, 255, (SIDE, SIDE, bands), dtype=np.uint8)
        Image.fromarray(pixels, mode=mode).save(out, "TIFF" if mode == "CMYK" else "PNG")
    return out.getvalue()


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I", "F", "LA", "P", "CMYK", "RGBA", "RGB"])
def test_the_estimate_covers_the_real_peak_of_a_decode(tmp_path, mode):
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc to read a process's peak memory")
    payload = encoded(mode)
    with Image.open(io.BytesIO(payload)) as image:
        assert image.mode == mode
        assert mode != "P" or "transparency" in image.info
    file = tmp_path / "image"
    file.write_bytes(payload)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(file)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    cost, peak = (int(v) for v in done.stdout.split())
    assert peak <= cost <= 1.5 * peak, (cost / SIDE**2, peak / SIDE**2)
