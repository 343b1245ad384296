"""`visrag index build | import | add | remove | ls | verify`: thin commands over the build stage.

They call indexer.build.pipeline (reader -> mapper -> writer), indexer.build.importing and
indexer.index.artifacts; models are imported only when a command runs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from indexer.cli.help import PlainCommand, command_group, user_errors
from models.hub import DEFAULT_IMAGE_MODEL

if TYPE_CHECKING:
    from indexer.build.pipeline import BuildReport
    from indexer.readers.records import Problem

index_app = command_group("index", "Build, import, update and verify index artifacts.")

TaxonomyOpt = Annotated[Path | None, typer.Option(help="taxonomy file (default: vehicle damage)")]
TextModelOpt = Annotated[
    str | None, typer.Option(help="text model id or local path (default all-MiniLM-L6-v2)")
]
DeviceOpt = Annotated[str, typer.Option(help="auto|cpu|cuda")]
BatchOpt = Annotated[int, typer.Option(min=1, help="images per encoder batch")]
WorkersOpt = Annotated[int, typer.Option(min=1, help="decode/preprocess worker threads")]
WaitOpt = Annotated[
    float,
    typer.Option(min=0.0, help="seconds to wait for another writer of the index (0: fail at once)"),
]
StoreOpt = Annotated[str, typer.Option(help="faiss (files, default) | milvus")]
MilvusUriOpt = Annotated[
    str | None,
    typer.Option(
        help="Milvus URI (http://host:19530) or a Milvus Lite file; token from "
        "VISRAG_MILVUS_TOKEN, never written"
    ),
]
MilvusCollectionOpt = Annotated[
    str,
    typer.Option(help="Milvus collection base name (<name>_image, <name>_fused, <name>_region)"),
]


def _target(store: str, uri: str | None, collection: str) -> Any:
    from indexer.index.stores import StoreTarget

    try:
        return StoreTarget(store, uri, collection)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--store") from exc


def _params(pairs: Sequence[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"--index-param expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _print_failed(failed: Sequence[Problem], out: Path, limit: int = 30) -> None:
    if not failed:
        return
    typer.secho(f"{len(failed)} input(s) failed and were skipped:", fg="yellow", err=True)
    for problem in failed[:limit]:
        typer.echo(f"  {problem.file}: {problem.reason}", err=True)
    if len(failed) > limit:
        from indexer.index.artifacts import manifest_path

        more = len(failed) - limit
        typer.echo(f"  ... and {more} more (listed in {manifest_path(out)})", err=True)


def _report(report: BuildReport, verb: str) -> None:
    _print_failed(report.failed, report.out)
    rate = ""
    if report.embedded:
        who = "image encoder" if report.encoders == 1 else f"{report.encoders} encoder actors"
        after = (
            f" after {report.startup_seconds:.0f} s of Ray start-up"
            if report.startup_seconds
            else ""
        )
        rate = (
            f", {report.images_per_second:.1f} img/s, {who} busy "
            f"{report.encoder_busy:.0%} of the embedding stage{after}"
        )
    typer.echo(
        f"{verb} {report.out}: {report.count} items ({report.embedded} embedded, "
        f"{report.cached} from cache, {len(report.failed)} failed) in {report.seconds:.1f} s{rate}"
    )
    section = report.manifest.regions
    if section is not None:
        fit = section.calibration
        where = (
            f"; 'where' threshold {fit['threshold']:.3f} (patch AUROC {fit['auroc']:.2f}, "
            f"{fit['inside']} inside / {fit['background']} background patches)"
            if fit.get("threshold") is not None
            else "; no 'where' threshold (needs patches inside and outside defects)"
        )
        typer.echo(f"regions: {section.count} ({section.kind}, dim {section.dim}){where}")


@index_app.command("build", cls=PlainCommand)
def build(
    manifest: Annotated[Path, typer.Option(help="dataset: train.jsonl, LabelMe dir or COCO json")],
    out: Annotated[Path, typer.Option(help="artifact directory to write (replaced atomically)")],
    image_model: Annotated[
        str, typer.Option(help="DINOv3/DINOv2/SigLIP 2 id or local path (README: --image-model)")
    ] = DEFAULT_IMAGE_MODEL,
    text_model: TextModelOpt = None,
    index_type: Annotated[str, typer.Option(help="flat|hnsw|ivfpq")] = "flat",
    index_param: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE, e.g. M=32, efSearch=128, nlist=1024")
    ] = None,
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="image weight in fusion")] = 0.6,
    image_size: Annotated[
        int | None, typer.Option(help="longer side in pixels (default 448; fixed-size: its own)")
    ] = None,
    pooling: Annotated[
        str | None, typer.Option(help="cls|cls+mean|mean|gem|pooler (default: the backbone's)")
    ] = None,
    dtype: Annotated[str | None, typer.Option(help="fp32|bf16|fp16 (default: auto)")] = None,
    device: DeviceOpt = "auto",
    batch_size: BatchOpt = 8,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="decode threads (default 2); --engine ray: encoder actors (default: the "
            "cluster's CPUs but one, left to decoding)",
        ),
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(help="embedding cache: an interrupted build resumes from it")
    ] = None,
    taxonomy: TaxonomyOpt = None,
    progress: Annotated[bool, typer.Option(help="progress bar")] = True,
    wait: WaitOpt = 0.0,
    engine: Annotated[
        str, typer.Option(help="local (in process) | ray (Ray Data; --workers = encoder actors)")
    ] = "local",
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster address (default: a local Ray)")
    ] = None,
    gpus_per_worker: Annotated[
        float, typer.Option(min=0.0, help="GPUs per Ray encoder actor (0: CPU actors)")
    ] = 0.0,
    store: StoreOpt = "faiss",
    milvus_uri: MilvusUriOpt = None,
    milvus_collection: MilvusCollectionOpt = "visrag",
    regions: Annotated[
        str,
        typer.Option(
            help="patches: a region vector per labelled polygon and per cluster of near defects, "
            "pooled from the same forward pass (either engine) | crops: each such region's crop "
            "(box plus a margin, full resolution) re-encoded by the image model, one more forward "
            "pass per region (--engine local) | none"
        ),
    ] = "patches",
) -> None:
    """Embed a dataset and write the index artifacts (failed images listed and skipped)."""
    from indexer.build.embed import embed_images
    from indexer.build.mapper import ImageEngine
    from indexer.build.pipeline import build_index
    from models.allocator import tune_allocator
    from models.image_encoder import load_image_encoder
    from models.taxonomy import load_taxonomy
    from models.text_encoder import load_text_encoder

    tune_allocator()  # the model reuses its working memory between batches (models/allocator.py)
    if engine not in ("local", "ray"):
        raise typer.BadParameter(f"--engine must be local or ray, got {engine!r}")
    if regions not in ("patches", "crops", "none"):
        raise typer.BadParameter(f"--regions must be patches, crops or none, got {regions!r}")
    if regions == "crops" and engine == "ray":
        raise typer.BadParameter(
            "--regions crops needs --engine local (the Ray actors pool patch regions only); "
            "pass --regions patches or none with --engine ray"
        )
    run: ImageEngine = embed_images
    if engine == "ray":
        from indexer.build.ray_engine import RayOptions, check_before_start, ray_engine

        options = RayOptions(ray_address, workers, gpus_per_worker)
        with user_errors():  # before Ray starts and the models load
            actors = check_before_start(options)
        if actors is None:
            typer.echo(f"joining the Ray cluster at {ray_address}", err=True)
        else:
            typer.echo(
                f"Ray: {actors} encoder actor(s), decoding on the other CPU(s); a local Ray "
                "takes several seconds to start and logs one core_worker line about actor "
                "restarts (harmless: a failed actor fails the build)",
                err=True,
            )
        run = ray_engine(options)
    with user_errors():
        image_encoder = load_image_encoder(
            image_model, device=device, dtype=dtype, image_size=image_size, pooling=pooling
        )
        text_encoder = load_text_encoder(text_model, device=device)
        report = build_index(
            manifest,
            out,
            image_encoder=image_encoder,
            text_encoder=text_encoder,
            taxonomy=load_taxonomy(taxonomy),
            alpha=alpha,
            index_type=index_type,
            index_params=_params(index_param),
            batch_size=batch_size,
            workers=workers or 2,
            cache_dir=cache_dir,
            progress=progress,
            wait=wait,
            engine=run,
            store=_target(store, milvus_uri, milvus_collection),
            regions=False if regions == "none" else regions,
        )
    _report(report, "built")


@index_app.command("import", cls=PlainCommand)
def import_(
    embeddings: Annotated[Path, typer.Option(help="(N, D) float32 .npy of image vectors")],
    metadata: Annotated[Path, typer.Option(help="JSON list of N metadata objects")],
    out: Annotated[Path, typer.Option(help="artifact directory to write")],
    text_model: TextModelOpt = None,
    image_model_id: Annotated[
        str | None, typer.Option(help="image model id, if the metadata does not name it")
    ] = None,
    index_type: Annotated[str, typer.Option(help="flat|hnsw|ivfpq")] = "flat",
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.6,
    device: DeviceOpt = "auto",
    taxonomy: TaxonomyOpt = None,
    store: StoreOpt = "faiss",
    milvus_uri: MilvusUriOpt = None,
    milvus_collection: MilvusCollectionOpt = "visrag",
    as_regions: Annotated[
        bool,
        typer.Option(
            "--as-regions",
            help="rows are crops of photos (source_image, cluster_bbox): index the photos as "
            "items and the crops as their regions (item vector: the mean of its crops')",
        ),
    ] = False,
) -> None:
    """Index precomputed image embeddings (labels normalised, descriptions from the template)."""
    from indexer.build.importing import import_embeddings, import_regions
    from models.taxonomy import load_taxonomy
    from models.text_encoder import load_text_encoder

    run = import_regions if as_regions else import_embeddings
    with user_errors():
        manifest = run(
            embeddings,
            metadata,
            out,
            taxonomy=load_taxonomy(taxonomy),
            text_encoder=load_text_encoder(text_model, device=device),
            alpha=alpha,
            image_model_id=image_model_id,
            index_type=index_type,
            store=_target(store, milvus_uri, milvus_collection),
        )
    coverage = manifest.dataset["coverage"]
    what = (
        f"{manifest.vector_count} vectors"
        if manifest.regions is None
        else f"{manifest.regions.count} crop vectors as regions of {manifest.vector_count} photos"
    )
    typer.echo(
        f"imported {what} of {manifest.image_model.id} into "
        f"{out}; label coverage {coverage['coverage']:.1%} ({coverage['unmapped']} unmapped"
        + (f": {coverage['unmapped_labels']})" if coverage["unmapped"] else ")")
    )
    if manifest.regions is not None:
        typer.echo(f"item vectors: {manifest.dataset.get('item_vectors')}")


@index_app.command("add", cls=PlainCommand)
def add(
    artifacts: Annotated[Path, typer.Argument(help="artifact directory")],
    manifest: Annotated[Path, typer.Option(help="JSONL (or dataset) of the new records")],
    image_model: Annotated[
        str | None, typer.Option(help="local copy of the recorded image model")
    ] = None,
    text_model: Annotated[
        str | None, typer.Option(help="local copy of the recorded text model")
    ] = None,
    device: DeviceOpt = "auto",
    batch_size: BatchOpt = 8,
    workers: WorkersOpt = 2,
    taxonomy: TaxonomyOpt = None,
    wait: WaitOpt = 0.0,
    skip_existing: Annotated[
        bool, typer.Option("--skip-existing", help="skip records already indexed (default: refuse)")
    ] = False,
) -> None:
    """Embed new records with the recorded models and append them (no full rebuild).

    Exits 1 and writes nothing when a record is already indexed (all named) or no input could be
    added; both are checked before the models load.
    """
    from indexer.build.pipeline import add_records, read_new_records
    from indexer.retrieval.opening import Overrides, open_index
    from models.allocator import tune_allocator

    tune_allocator()
    overrides = Overrides(
        device=device, image_model=image_model, text_model=text_model, taxonomy=taxonomy
    )
    with user_errors():  # the lock covers only add_records' re-read, merge and write
        opened = open_index(artifacts, replace(overrides, load_image=False, load_text=False))
        new = read_new_records(
            opened.artifacts, manifest, opened.taxonomy, skip_existing=skip_existing
        )
        if new.existing:
            typer.echo(f"skipped {len(new.existing)} record(s) already indexed", err=True)
        if not new.read.records:
            typer.echo(f"nothing new to add; {artifacts} is unchanged")
            return
        _list_duplicates(opened.artifacts, new.read.records)
        report = add_records(
            opened.with_encoders(overrides), new, batch_size=batch_size, workers=workers, wait=wait
        )
    _report(report, "updated")


def _list_duplicates(artifacts: Any, records: Any) -> None:
    """Name the records that copy an indexed photo (bytes or perceptual hash) on stderr."""
    from indexer.index.duplicates import (
        MAX_DISTANCE,
        catalogue_fingerprints,
        describe,
        find_duplicates,
        fingerprint,
    )

    new = [(r.id, fingerprint(Path(r.image_path).read_bytes()), None) for r in records]
    found = find_duplicates(new, catalogue_fingerprints(artifacts), max_distance=MAX_DISTANCE)
    if found:
        typer.echo(f"{len(found)} near-duplicate(s) of indexed photos: {describe(found)}", err=True)


@index_app.command("remove", cls=PlainCommand)
def remove(
    artifacts: Annotated[Path, typer.Argument(help="artifact directory")],
    items: Annotated[
        list[str], typer.Argument(help="item ids or image paths (as `index ls` prints them)")
    ],
    wait: WaitOpt = 0.0,
) -> None:
    """Remove items by id or image path (the directory is rewritten atomically)."""
    from indexer.build.pipeline import remove_items
    from indexer.cli.items import resolve_ids
    from indexer.index.artifacts import load_artifacts

    with user_errors():
        ids = resolve_ids(load_artifacts(artifacts, verify=False), items)
        manifest = remove_items(artifacts, ids, wait=wait)
    typer.echo(f"removed {len(ids)} item(s); {manifest.vector_count} remain in {artifacts}")


@index_app.command("ls", cls=PlainCommand)
def ls(
    artifacts: Annotated[Path, typer.Argument(help="artifact directory")],
    label: Annotated[
        list[str] | None,
        typer.Option(help="only items with this label (repeatable: all of them; no_damage)"),
    ] = None,
    path: Annotated[
        str | None, typer.Option(help="only images whose path matches (glob or substring)")
    ] = None,
    zone: Annotated[str | None, typer.Option(help="only items in this zone")] = None,
    taxonomy: TaxonomyOpt = None,
) -> None:
    """List indexed items: id, image, labels (label:count), zone; tab-separated."""
    from indexer.cli.items import item_line, select_items
    from indexer.index.artifacts import load_artifacts
    from models.taxonomy import load_taxonomy

    with user_errors():
        a = load_artifacts(artifacts, verify=False)
        tax = load_taxonomy(taxonomy)
    for name in label or ():
        if not tax.is_known(name):
            raise typer.BadParameter(
                f"{name!r} is not a label of the taxonomy: {', '.join(tax.label_ids)}",
                param_hint="--label",
            )
    chosen = select_items(a.items, tax, labels=label or (), path=path, zone=zone)
    for item in chosen:
        typer.echo(item_line(item))
    typer.echo(f"{len(chosen)} of {len(a)} item(s)", err=True)


@index_app.command("verify", cls=PlainCommand)
def verify(artifacts: Annotated[Path, typer.Argument(help="artifact directory")]) -> None:
    """Check files, checksums, counts, dims and manifest vs catalogue; exit 1 on any failure."""
    from indexer.index.verification import verify_artifacts

    report = verify_artifacts(artifacts)
    for check, ok, detail in report:
        mark = typer.style("OK  ", fg="green") if ok else typer.style("FAIL", fg="red")
        typer.echo(f"{mark} {check}" + (f": {detail}" if detail else ""))
    failed = [c for c, ok, _ in report if not ok]
    if failed:
        typer.secho(f"{artifacts}: {len(failed)} check(s) failed", fg="red", err=True)
        raise typer.Exit(1)
    typer.secho(f"{artifacts}: OK", fg="green")
