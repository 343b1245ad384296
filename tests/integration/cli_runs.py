"""`visrag` commands run in-process (Typer's runner) and the `index build` line the tests share."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner


def invoke(*args: str | Path, ok: bool = True) -> str:
    """Run ``visrag ARGS``; asserts exit 0 (``ok=False``: exit 1, an expected error), returns
    the output."""
    from indexer.cli.main import cli

    result = CliRunner().invoke(cli, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, f"{args}\n{result.output}\n{result.exception!r}"
    else:
        assert result.exit_code == 1, f"{args} should fail\n{result.output}"
    return result.output


def build_args(
    manifest: Path, out: Path, model: Path, *extra: str, progress: bool = False
) -> list[str]:
    """``visrag index build`` of ``manifest`` into ``out`` with ``model`` at 64 px on the CPU."""
    return [
        "index",
        "build",
        "--manifest",
        str(manifest),
        "--out",
        str(out),
        "--image-model",
        str(model),
        "--image-size",
        "64",
        "--device",
        "cpu",
        *([] if progress else ["--no-progress"]),
        *extra,
    ]


def evaluate_args(artifacts: Path, queries: Path, out: Path, *extra: str) -> list[str]:
    """``visrag evaluate`` of ``artifacts`` on ``queries`` at k 1, 3, 5, three random baselines."""
    return [
        "evaluate",
        "--artifacts",
        str(artifacts),
        "--queries",
        str(queries),
        "--out",
        str(out),
        "--k",
        "1,3,5",
        "--random-repeats",
        "3",
        "--device",
        "cpu",
        *extra,
    ]
