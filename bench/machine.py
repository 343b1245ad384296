"""The machine a benchmark ran on, as the benches record it."""

from __future__ import annotations

import argparse
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


def add_allocator_option(parser: argparse.ArgumentParser) -> None:
    """``--allocator tuned|default``: the policy the visrag commands set, or glibc's."""
    parser.add_argument(
        "--allocator",
        choices=("tuned", "default"),
        default="tuned",
        help="tuned: the allocator policy `visrag index build` and `serve` set "
        "(models.allocator.tune_allocator); default: glibc's, for comparison",
    )


def apply_allocator(args: argparse.Namespace) -> None:
    """Set the process's allocator policy as ``--allocator`` asks, and say so."""
    if args.allocator == "tuned":
        from models.allocator import tune_allocator

        print(f"allocator policy set: {tune_allocator()}", flush=True)
