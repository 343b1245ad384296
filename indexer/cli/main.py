"""The offline command line: `visrag analyze | split | index ... | evaluate`.

`app.cli` mounts this Typer app and adds the service commands (`serve`, `demo`), keeping the
layering models <- indexer <- app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from indexer.cli.help import PlainCommand, command_group
from indexer.cli.index import DeviceOpt, TaxonomyOpt, index_app
from models.errors import VisragError

cli = command_group(
    "visrag", "visrag: dataset analysis, label-aware split, hybrid index, honest evaluation."
)
cli.add_typer(index_app, name="index")
model_app = command_group("model", "Image model checkpoints on disk.")
cli.add_typer(model_app, name="model")
RecordedModelOpt = Annotated[
    str | None, typer.Option(help="a local copy of the model the index records (default: its id)")
]


@cli.callback()
def _group() -> None:
    """visrag: dataset analysis, label-aware split, hybrid index, honest evaluation."""
    # A callback keeps `visrag <command>` a command group even while only one command exists.


@cli.command("evaluate", cls=PlainCommand)
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
        typer.Option(help="image|hybrid|rerank|probe; repeatable or comma list"),
    ] = None,
    k: Annotated[str, typer.Option("--k", help="cut-offs, comma list")] = "1,3,5,10",
    alphas: Annotated[
        str | None, typer.Option(help="fusion weights to sweep for hybrid/rerank")
    ] = None,
    text_source: Annotated[
        str | None,
        typer.Option(help="JSONL field with each query's text (hybrid), or 'oracle' (leaks)"),
    ] = None,
    taxonomy: TaxonomyOpt = None,
    device: DeviceOpt = "auto",
    image_model: RecordedModelOpt = None,
    text_model: RecordedModelOpt = None,
    rerank_candidates: Annotated[int, typer.Option(min=1, help="rerank: image top-N")] = 20,
    random_repeats: Annotated[int, typer.Option(help="random-baseline draws")] = 20,
    seed: Annotated[int, typer.Option(help="random-baseline and bootstrap seed")] = 0,
    bootstrap: Annotated[
        int, typer.Option(min=0, help="bootstrap resamples for the difference intervals; 0: none")
    ] = 1000,
    unit: Annotated[
        str,
        typer.Option(
            help="image: photos as queries | region: damage regions as queries (region-to-region "
            "beside the whole-image baseline of their photos; localisation on photos with polygons)"
        ),
    ] = "image",
    localisation: Annotated[
        bool | None,
        typer.Option(
            "--localisation/--no-localisation",
            help="--unit region: pointing game and overlap of 'where is the damage' (default: "
            "when the index has patch regions; embeds every photo with polygons)",
        ),
    ] = None,
) -> None:
    """Retrieval quality beside majority-label and random baselines, with latency per stage."""
    from indexer.evaluation.pipeline import (
        parse_numbers,
        run_evaluation,
        run_region_evaluation,
        split_list,
    )
    from indexer.evaluation.queries import ORACLE, ORACLE_LABEL, EvaluationError
    from indexer.evaluation.report import print_summary

    if unit not in ("image", "region"):
        raise typer.BadParameter(f"--unit must be image or region, got {unit!r}")
    if unit == "region" and (set(split_list(mode)) - {"image"} or alphas or text_source):
        raise typer.BadParameter(
            "--unit region compares region vectors with the photos' image vectors: it takes no "
            "--mode, --alphas or --text-source"
        )
    if unit == "image" and localisation is not None:
        raise typer.BadParameter("--localisation belongs to --unit region")
    try:
        if unit == "region":
            ev, paths = run_region_evaluation(
                artifacts=artifacts,
                out=out,
                queries=queries,
                leave_one_out=leave_one_out,
                ks=parse_numbers(k, int, "k"),
                taxonomy=taxonomy,
                device=device,
                image_model=image_model,
                localisation=localisation,
                random_repeats=random_repeats,
                seed=seed,
                bootstrap=bootstrap,
            )
        else:
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
                bootstrap=bootstrap,
                seed=seed,
            )
    except EvaluationError as exc:
        raise typer.BadParameter(str(exc)) from exc
    except (VisragError, FileNotFoundError) as exc:
        # Corrupt artifacts, missing weights or an unreadable query file: one line, no traceback.
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
    if text_source == ORACLE:
        typer.secho(f"text source: {ORACLE_LABEL}", fg="red", err=True)
    print_summary(ev)
    for path in paths.values():
        typer.echo(f"wrote {path}")


# -- dataset commands: analyze, split, generate (bodies in indexer.analysis / split / synthetic) --
FormatOpt = Annotated[str, typer.Option("--format", help="auto|labelme|coco|jsonl")]
TaxonomyPathOpt = Annotated[
    Path | None, typer.Option("--taxonomy", help="taxonomy file (default: vehicle damage)")
]
GroupByOpt = Annotated[
    str | None,
    typer.Option(
        "--group-by",
        help="what a split keeps together: image (default), capture (the long number in the "
        "file name), folder, duplicates (near-copies of a photo), or a regex with one group",
    ),
]
ImagesDirOpt = Annotated[
    Path | None, typer.Option("--images-dir", help="COCO: folder the file_names are relative to")
]


def _dataset_errors(exc: Exception) -> typer.Exit:
    typer.secho(f"error: {exc}", fg="red", err=True)
    return typer.Exit(1)


@cli.command("analyze", cls=PlainCommand)
def analyze(
    dataset: Annotated[Path, typer.Argument(help="LabelMe folder, COCO .json or .jsonl")],
    out: Annotated[Path, typer.Option(help="report folder (analysis.json, .md, plots)")],
    format: FormatOpt = "auto",
    taxonomy: TaxonomyPathOpt = None,
    group_by: GroupByOpt = None,
    images_dir: ImagesDirOpt = None,
    duplicates: Annotated[
        bool, typer.Option(help="list near-duplicate photos (decodes every image)")
    ] = False,
) -> None:
    """Analyse a dataset from its annotations and image headers (pixels: --duplicates only)."""
    from indexer.analysis.rendering import print_summary
    from indexer.analysis.summary import analyse_dataset
    from models.taxonomy import load_taxonomy

    try:
        report, paths = analyse_dataset(
            dataset,
            out,
            taxonomy=load_taxonomy(taxonomy),
            format=format,
            group_by=group_by,
            images_dir=images_dir,
            progress=True,
            duplicates=duplicates,
        )
    except VisragError as exc:  # DatasetError, GroupByError, TaxonomyError
        raise _dataset_errors(exc) from exc
    print_summary(report)
    typer.echo(f"wrote {paths['json']}, {paths['markdown']} and {len(paths) - 2} plots")


@cli.command("split", cls=PlainCommand)
def split(
    dataset: Annotated[Path, typer.Argument(help="LabelMe folder, COCO .json or .jsonl")],
    out: Annotated[Path, typer.Option(help="folder for train/test.jsonl, split_report.json")],
    test_size: Annotated[float, typer.Option(min=0.0, max=1.0, help="test share of images")] = 0.2,
    seed: Annotated[int, typer.Option(help="seed of the split")] = 42,
    group_by: GroupByOpt = None,
    format: FormatOpt = "auto",
    taxonomy: TaxonomyPathOpt = None,
    images_dir: ImagesDirOpt = None,
) -> None:
    """Deterministic, multi-label stratified, group-aware train/test split."""
    from indexer.split.splitter import print_summary, split_files
    from models.taxonomy import load_taxonomy

    try:
        result, paths, scan = split_files(
            dataset,
            out,
            taxonomy=load_taxonomy(taxonomy),
            test_size=test_size,
            seed=seed,
            format=format,
            group_by=group_by,
            images_dir=images_dir,
            progress=True,
        )
    except VisragError as exc:  # DatasetError, GroupByError, SplitError, TaxonomyError
        raise _dataset_errors(exc) from exc
    if scan.problems:
        typer.secho(
            f"{len(scan.problems)} input problem(s) skipped (visrag analyze lists them)",
            fg="yellow",
        )
    print_summary(result.report)
    typer.echo(f"wrote {paths['train']}, {paths['test']}, {paths['report']}")


@cli.command("generate", cls=PlainCommand)
def generate(
    out: Annotated[Path, typer.Argument(help="folder to write the synthetic LabelMe dataset to")],
    n: Annotated[int, typer.Option("--n", min=1, help="number of valid images")] = 200,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    broken: Annotated[int, typer.Option(min=0, help="deliberately broken inputs to add")] = 0,
    size: Annotated[str, typer.Option(help="image size WIDTHxHEIGHT")] = "640x480",
) -> None:
    """Write a synthetic car-panel damage dataset (LabelMe, reference naming scheme)."""
    from indexer.synthetic.generator import generate_dataset

    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError as exc:
        raise typer.BadParameter(f"--size expects WIDTHxHEIGHT, got {size!r}") from exc
    summary = generate_dataset(out, n, seed=seed, broken=broken, image_size=(width, height))
    typer.echo(
        f"wrote {summary['images']} images ({summary['no_damage']} without damage, "
        f"{summary['captures']} captures) to {out}"
    )
    for label, count in summary["label_images"].items():
        typer.echo(f"  {label}: {count} images, {summary['label_instances'][label]} instances")
    for item in summary["broken"]:
        typer.echo(f"  broken ({item['kind']}, {item['effect']}): {item['file']}")


@model_app.command("tiny", cls=PlainCommand)
def tiny_model(
    out: Annotated[Path, typer.Argument(help="folder to write the checkpoint to (new or empty)")],
    seed: Annotated[int, typer.Option(help="seed of the random weights")] = 0,
) -> None:
    """Write a tiny, randomly initialised DINOv3 checkpoint: --image-model for trying every
    command without downloading weights (its vectors mean nothing)."""
    from models.testing import make_tiny_dinov3

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        typer.secho(f"error: {out} exists and is not an empty folder", fg="red", err=True)
        raise typer.Exit(1)
    make_tiny_dinov3(out, seed=seed)
    typer.echo(f"wrote a tiny random DINOv3 to {out} (random weights: retrieval quality is noise)")
    typer.echo(f"use it as: visrag index build --manifest DATA --out DIR --image-model {out}")
