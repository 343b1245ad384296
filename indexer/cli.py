"""The offline command line: `visrag analyze | split | index ... | evaluate`.

`app.cli` mounts this Typer app and adds the service commands (`serve`, `demo`), keeping the
layering models <- indexer <- app.
"""

from __future__ import annotations

import typer

cli = typer.Typer(
    name="visrag",
    help="visrag: dataset analysis, label-aware split, hybrid index, honest evaluation.",
    no_args_is_help=True,
    add_completion=False,
)
