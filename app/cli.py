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


@cli.command("evaluate-vlm", cls=PlainCommand)
def evaluate_vlm(
    base_url: Annotated[
        str, typer.Option(help="OpenAI-compatible API base, e.g. http://127.0.0.1:8001/v1")
    ],
    model: Annotated[str, typer.Option(help="model name the endpoint serves")],
    out: Annotated[Path, typer.Option(help="report directory")] = Path("vlm-eval"),
    artifacts: Annotated[Path | None, typer.Option(help="index (in-process retrieval)")] = None,
    queries: Annotated[Path | None, typer.Option(help="held-out queries (JSONL)")] = None,
    leave_one_out: Annotated[
        bool, typer.Option("--leave-one-out", help="catalogue items query the rest")
    ] = False,
    service: Annotated[
        str | None, typer.Option(help="a running visrag service instead of in-process")
    ] = None,
    arms: Annotated[str, typer.Option(help="comma-separated arms")] = "none,context,"
    "context+images,shuffled",
    api_key_env: Annotated[
        str | None, typer.Option(help="environment variable holding the endpoint's key")
    ] = None,
    allow_remote_images: Annotated[
        bool,
        typer.Option(
            "--allow-remote-images",
            help="send the photos to an endpoint that is not on this machine",
        ),
    ] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="first N queries only")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="requests in flight")] = 4,
    timeout: Annotated[float, typer.Option(help="seconds per request")] = 120.0,
    retries: Annotated[int, typer.Option(min=0, help="retries on 429/5xx/timeouts")] = 4,
    json_mode: Annotated[bool, typer.Option(help="ask for response_format json_object")] = True,
    k: Annotated[int, typer.Option(min=1, help="neighbours in the context")] = 5,
    cache: Annotated[Path | None, typer.Option(help="answer cache (default: OUT/cache)")] = None,
    seed: Annotated[int, typer.Option(help="seed of the shuffle and the bootstrap")] = 0,
    bootstrap: Annotated[int, typer.Option(min=10, help="bootstrap resamples")] = 1000,
    device: Annotated[str, typer.Option(help="device of the in-process encoder")] = "auto",
) -> None:
    """Does the VLM answer better with visrag's context? Arms none / context / context+images /
    shuffled against an OpenAI-compatible /v1/chat/completions; answers cached in OUT/cache."""
    from app.settings import secret_from_env
    from app.vlm_eval.chat import RemoteEndpointError
    from app.vlm_eval.experiment import Endpoint, Retrieval, run_vlm_evaluation
    from app.vlm_eval.report import summary_lines, write_report
    from indexer.evaluation.queries import EvaluationError

    endpoint = Endpoint(
        base_url,
        model,
        api_key=secret_from_env(api_key_env),
        timeout=timeout,
        retries=retries,
        json_mode=json_mode,
        concurrency=concurrency,
        allow_remote_images=allow_remote_images,
    )
    if allow_remote_images:
        typer.secho(f"photos WILL be sent to {base_url}", fg="yellow", err=True)
    retrieval = Retrieval(artifacts, queries, leave_one_out, service, k=k, device=device)
    try:
        with typer.progressbar(length=1, label="asking the VLM") as bar:

            def progress(done: int, total: int) -> None:
                bar.length = total
                bar.update(done - bar.pos)

            metrics = run_vlm_evaluation(
                retrieval,
                endpoint,
                arms=[a.strip() for a in arms.split(",") if a.strip()],
                cache_dir=cache or out / "cache",
                limit=limit,
                seed=seed,
                bootstrap=bootstrap,
                echo=lambda line: typer.echo(line, err=True),
                progress=progress,
            )
    except (EvaluationError, RemoteEndpointError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    paths = write_report(metrics, out)
    typer.echo("\n".join(summary_lines(metrics)))
    typer.echo(f"{metrics['requests']} requests sent; report: {paths['summary']}")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
