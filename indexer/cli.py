"""The offline command line: `visrag analyze | split | index ... | evaluate`.

`app.cli` mounts this Typer app and adds the service commands (`serve`, `demo`), keeping the
layering models <- indexer <- app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from indexer.cli_index import index_app

cli = typer.Typer(
    name="visrag",
    help="visrag: dataset analysis, label-aware split, hybrid index, honest evaluation.",
    no_args_is_help=True,
    add_completion=False,
)
cli.add_typer(index_app, name="index")


@cli.callback()
def _group() -> None:
    """visrag: dataset analysis, label-aware split, hybrid index, honest evaluation."""
    # A callback keeps `visrag <command>` a command group even while only one command exists.


_USER_ERRORS = frozenset(
    {"ArtifactError", "ChecksumError", "ManifestMismatchError", "ModelNotAvailableError",
     "DatasetError", "FileNotFoundError", "TaxonomyError"}
)  # fmt: skip


@cli.command("evaluate")
def evaluate(
    artifacts: Annotated[Path, typer.Option(help="index artifact directory")],
    out: Annotated[
        Path, typer.Option(help="report directory (metrics.json, summary.md, report.html)")
    ],
    queries: Annotated[Path | None, typer.Option(help="held-out JSONL (test.jsonl)")] = None,
    leave_one_out: Annotated[
        bool, typer.Option("--leave-one-out", help="each item queries the rest, own group excluded")
    ] = False,
    mode: Annotated[
        list[str] | None,
        typer.Option(help="image|hybrid|rerank; repeatable or comma list"),
    ] = None,
    k: Annotated[str, typer.Option("--k", help="cut-offs, comma list")] = "1,3,5,10",
    alphas: Annotated[
        str | None, typer.Option(help="fusion weights to sweep for hybrid/rerank")
    ] = None,
    text_source: Annotated[
        str | None,
        typer.Option(help="JSONL field with each query's text (hybrid), or 'oracle' (leaks)"),
    ] = None,
    taxonomy: Annotated[str | None, typer.Option(help="taxonomy file")] = None,
    device: Annotated[str, typer.Option(help="auto|cpu|cuda")] = "auto",
    image_model: Annotated[
        str | None, typer.Option(help="local copy of the recorded image model")
    ] = None,
    text_model: Annotated[
        str | None, typer.Option(help="local copy of the recorded text model")
    ] = None,
    rerank_candidates: Annotated[int, typer.Option(min=1, help="rerank: image top-N")] = 20,
    random_repeats: Annotated[int, typer.Option(help="random-baseline draws")] = 20,
    seed: Annotated[int, typer.Option(help="random-baseline seed")] = 0,
) -> None:
    """Retrieval quality beside majority-label and random baselines, with latency per stage."""
    from indexer.evaluation.pipeline import parse_numbers, run_evaluation, split_list
    from indexer.evaluation.queries import ORACLE, ORACLE_LABEL, EvaluationError
    from indexer.evaluation.report import print_summary

    try:
        ev, paths = run_evaluation(
            artifacts=artifacts,
            out=out,
            queries=queries,
            leave_one_out=leave_one_out,
            modes=split_list(mode) or ["image"],
            ks=parse_numbers(k, int, "k"),
            alphas=parse_numbers(alphas, float, "alphas"),
            text_source=text_source,
            taxonomy=taxonomy,
            device=device,
            image_model=image_model,
            text_model=text_model,
            rerank_candidates=rerank_candidates,
            random_repeats=random_repeats,
            seed=seed,
        )
    except EvaluationError as exc:
        raise typer.BadParameter(str(exc)) from exc
    except Exception as exc:
        # Corrupt artifacts, missing weights or an unreadable query file: one line, no traceback.
        if type(exc).__name__ not in _USER_ERRORS:
            raise
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
    if text_source == ORACLE:
        typer.secho(f"text source: {ORACLE_LABEL}", fg="red", err=True)
    print_summary(ev)
    for path in paths.values():
        typer.echo(f"wrote {path}")
