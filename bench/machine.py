"""The machine a benchmark ran on, as the benches record it."""

from __future__ import annotations

import platform
import subprocess


def cpu_model() -> str:
    """The CPU model name ``lscpu`` reports (``platform.processor()`` where it is missing)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        line = next(ln for ln in out.splitlines() if ln.startswith("Model name"))
        return line.split(":", 1)[1].strip()
    except (OSError, StopIteration):
        return platform.processor() or "unknown"
