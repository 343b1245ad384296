"""Console entry point: the indexer's commands plus the service commands (`serve`, `demo`,
`query`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from indexer.cli.help import PlainCommand
from indexer.cli.main import cli
from visrag_client.schemas import (
    ContextFormat,
    ContextResponse,
    Language,
    QueryMode,
    RetrieveResponse,
)


@cli.command("serve", cls=PlainCommand)
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

    given: dict[str, Any] = {"host": host, "port": port, "artifacts": artifacts}
    settings = Settings(**{k: v for k, v in given.items() if v is not None})
    raise typer.Exit(run_server(settings))


@cli.command("demo", cls=PlainCommand)
def demo(
    n: Annotated[int, typer.Option("--n", min=10, help="synthetic images to generate")] = 300,
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8000,
    image_model: Annotated[
        str | None, typer.Option(help="DINOv3 hub id or local dir (default: VISRAG_IMAGE_MODEL)")
    ] = None,
    tiny: Annotated[
        bool, typer.Option("--tiny", help="skip the real model: tiny random DINOv3 (meaningless)")
    ] = False,
    workdir: Annotated[Path, typer.Option(help="where data, split and index go")] = Path(
        "visrag-demo"
    ),
    image_size: Annotated[int, typer.Option(help="longer image side fed to DINOv3")] = 224,
    seed: Annotated[int, typer.Option(help="seed of the synthetic data and split")] = 0,
) -> None:
    """Generate a synthetic dataset, split it, index it and serve it with the demo page."""
    from app.demo import demo_resources, port_in_use, prepare_demo
    from app.server import run_server
    from app.settings import Settings

    if port_in_use("127.0.0.1", port):
        typer.secho(
            f"port {port} on 127.0.0.1 is already in use (another visrag demo or server?): "
            f"stop it, or pick another port, e.g. visrag demo --port {port + 1}",
            fg="red",
            err=True,
        )
        raise typer.Exit(2)
    base = Settings()
    build = prepare_demo(
        workdir,
        n=n,
        seed=seed,
        image_model=image_model or base.image_model,
        text_model=base.text_model,
        tiny=tiny,
        image_size=image_size,
        device=base.device,
        echo=typer.echo,
    )
    settings = base.model_copy(
        update={
            "artifacts": build.artifacts,
            "host": "127.0.0.1",
            "port": port,
            "demo_page": True,
            "demo_samples": build.samples,
        }
    )
    typer.secho(f"demo page: http://127.0.0.1:{port}/  (Ctrl+C to stop)", fg="green", bold=True)
    if build.tiny:
        typer.secho(
            "(tiny random model, NOT a real model: it only tells the drawn damage apart)",
            fg="red",
            bold=True,
        )
    resources = demo_resources(build, rerank_candidates=settings.rerank_candidates)
    raise typer.Exit(run_server(settings, resources=resources))


@cli.command("query", cls=PlainCommand)
def query(
    image: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="query image")],
    url: Annotated[str, typer.Option(help="the visrag service, e.g. http://127.0.0.1:8000")],
    context: Annotated[
        bool, typer.Option("--context", help="POST /context instead of /retrieve")
    ] = False,
    fmt: Annotated[ContextFormat, typer.Option("--format", help="context format")] = "markdown",
    k: Annotated[int | None, typer.Option(help="neighbours (default: the service's)")] = None,
    mode: Annotated[QueryMode | None, typer.Option(help="query mode")] = None,
    text: Annotated[str | None, typer.Option(help="caption (mode hybrid)")] = None,
    language: Annotated[Language, typer.Option(help="context language")] = "en",
    api_key: Annotated[str | None, typer.Option(help="API key, if the service has keys")] = None,
    timeout: Annotated[float, typer.Option(help="seconds per request")] = 60.0,
) -> None:
    """Query a running visrag service over HTTP (the visrag_client a gateway uses).

    Prints the context block (markdown/text), else the JSON answer.
    """
    from visrag_client import VisragClient, VisragClientError

    try:
        with VisragClient(url, api_key=api_key, timeout=timeout) as client:
            answer: RetrieveResponse | ContextResponse = (
                client.context(image, k=k, mode=mode, text=text, format=fmt, language=language)
                if context
                else client.retrieve(image, k=k, mode=mode, text=text)
            )
    except VisragClientError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
    if isinstance(answer, ContextResponse) and answer.format in ("markdown", "text"):
        typer.echo(answer.context, nl=False)
    else:
        typer.echo(answer.model_dump_json(indent=2, exclude_none=True))


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
