"""Console entry point: the indexer's commands plus the service commands (`serve`, `demo`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from indexer.cli import cli


@cli.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="bind address (VISRAG_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (VISRAG_PORT)")] = None,
    artifacts: Annotated[
        Path | None, typer.Option(help="index artifact directory (VISRAG_ARTIFACTS)")
    ] = None,
) -> None:
    """Serve the index over HTTP (uvicorn, one worker); other settings from VISRAG_* variables."""
    from app.server import run_server
    from app.settings import Settings

    given = {"host": host, "port": port, "artifacts": artifacts}
    settings = Settings(**{k: v for k, v in given.items() if v is not None})
    raise typer.Exit(run_server(settings))


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
