"""CLI commands for the index area: ``gaitsearch index build|add|remove|list|activate|gc``,
and ``split|shards`` for a sharded gallery (``gaitsearch.index.shards``).

Heavy imports (torch, faiss, ray) happen inside the commands so ``--help`` stays instant.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer
from gaitsearch.service.cli_errors import fail, os_error_line

index_app = typer.Typer(
    name="index",
    help="Build and maintain versioned FAISS indexes of a gallery (publish, roll back, gc).",
    no_args_is_help=True,
)

INDEX_DIR_HELP = "Index directory (holds versions/ and CURRENT). Default: $GAITSEARCH_INDEX_DIR."
CHECKPOINT_HELP = "Model checkpoint directory (default: the shipped checkpoint)."


def _index_dir(value: Path | None) -> Path:
    if value is not None:
        return value
    env = os.environ.get("GAITSEARCH_INDEX_DIR")
    if not env:
        fail("no index directory: pass --index-dir or set GAITSEARCH_INDEX_DIR")
    return Path(str(env))


def _known_errors() -> tuple[type[BaseException], ...]:
    from gaitsearch.index.build import IndexBuildError
    from gaitsearch.index.loaded_index import IndexLoadError
    from gaitsearch.index.ray_job import RayJobError
    from gaitsearch.index.versions import IndexLockedError, IndexWriteError
    from gaitsearch.model.checkpoint import CheckpointError
    from gaitsearch.model.gallery import GalleryError
    from gaitsearch.model.skeleton import SkeletonError

    return (
        IndexBuildError,
        IndexLoadError,
        IndexLockedError,
        IndexWriteError,
        RayJobError,
        CheckpointError,
        GalleryError,
        SkeletonError,
        ValueError,
        FileNotFoundError,
        PermissionError,
    )


def _print_result(result) -> None:
    for line in result.problems:
        typer.secho(f"skipped: {line}", fg=typer.colors.YELLOW, err=True)
    r = result.manifest.recall
    if r is not None and not r.meets_target:
        typer.secho(
            f"warning: recall@10 {r.recall_at_10:.3f} of the {result.kind} index is below the "
            f"{r.target} target (measured on {r.queries} {r.query_source} queries)",
            fg=typer.colors.YELLOW,
            err=True,
        )
    typer.echo(result.summary())


@index_app.command("build")
def build(
    data: Path = typer.Option(
        ..., "--data", help="Gallery directory (sequences/ + metadata.jsonl)."
    ),
    index_dir: Path | None = typer.Option(None, "--index-dir", help=INDEX_DIR_HELP),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help=CHECKPOINT_HELP),
    engine: str = typer.Option(
        "local", "--engine", help="local (in process) or ray (Ray Data actor pool)."
    ),
    kind: str = typer.Option(
        "auto",
        "--kind",
        help="FAISS index: auto (by size), flat (exact), hnsw, ivfflat, ivfsq8 or ivfpq.",
    ),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Sequences per batch."),
    strict: bool = typer.Option(
        False, "--strict", help="Refuse the gallery on the first bad file instead of skipping."
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="Existing Ray cluster (e.g. ray://head:10001 or auto)."
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        help="Worker processes (local engine, galleries of 8192+ walks) or Ray actors "
        "(default: one per available CPU).",
    ),
    precision: str = typer.Option(
        "fp32",
        "--precision",
        help="Encoder arithmetic: fp32 (exact) or bf16 (CPU autocast, faster on CPUs with "
        "AMX/AVX512-BF16; vectors within cosine 0.999 of fp32).",
    ),
) -> None:
    """Embed a gallery into a new index version and publish it (CURRENT)."""
    from gaitsearch.index.build import build_index

    target = _index_dir(index_dir)
    try:
        result = build_index(
            data,
            target,
            checkpoint,
            engine=engine,
            kind=kind,
            batch_size=batch_size,
            strict=strict,
            ray_address=ray_address,
            workers=workers,
            precision=precision,
        )
    except _known_errors() as exc:
        fail(str(exc))
    except OSError as exc:  # anything else the OS refused: one line, never a traceback
        fail(os_error_line(exc))
    _print_result(result)


@index_app.command("add")
def add(
    data: Path = typer.Option(..., "--data", help="Gallery with the sequences to add."),
    index_dir: Path | None = typer.Option(None, "--index-dir", help=INDEX_DIR_HELP),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Checkpoint (default: the one the live index was built with)."
    ),
    engine: str = typer.Option("local", "--engine", help="local or ray."),
    batch_size: int = typer.Option(256, "--batch-size", min=1),
    strict: bool = typer.Option(False, "--strict", help="Refuse on the first bad file."),
    ray_address: str | None = typer.Option(None, "--ray-address"),
) -> None:
    """New version = live version + these sequences (same ids are replaced); publish it."""
    from gaitsearch.index.derive import add_to_index

    try:
        result = add_to_index(
            data,
            _index_dir(index_dir),
            checkpoint,
            engine=engine,
            batch_size=batch_size,
            strict=strict,
            ray_address=ray_address,
        )
    except _known_errors() as exc:
        fail(str(exc))
    except OSError as exc:  # anything else the OS refused: one line, never a traceback
        fail(os_error_line(exc))
    _print_result(result)


@index_app.command("remove")
def remove(
    ids: str = typer.Option(..., "--ids", help="Comma-separated sequence ids to remove."),
    index_dir: Path | None = typer.Option(None, "--index-dir", help=INDEX_DIR_HELP),
) -> None:
    """New version = live version without these ids; publish it."""
    from gaitsearch.index.derive import remove_from_index

    wanted = [i.strip() for i in ids.split(",") if i.strip()]
    if not wanted:
        fail("--ids: give at least one id")
    try:
        result = remove_from_index(_index_dir(index_dir), wanted)
    except _known_errors() as exc:
        fail(str(exc))
    except OSError as exc:  # anything else the OS refused: one line, never a traceback
        fail(os_error_line(exc))
    _print_result(result)


@index_app.command("list")
def list_(
    index_dir: Path | None = typer.Option(None, "--index-dir", help=INDEX_DIR_HELP),
) -> None:
    """Versions with their counts, kinds and recall; * marks the live one."""
    from gaitsearch.index.maintenance import version_table

    target = _index_dir(index_dir)
    if not target.is_dir():
        fail(f"{target}: no such index directory")
    try:
        rows = version_table(target)
    except _known_errors() as exc:
        fail(str(exc))
    if not rows:
        typer.echo(f"{target}: no versions yet")
        return
    typer.echo(f"  {'version':<8} {'count':>9} {'kind':<8} {'recall@10':>9}  {'op':<7} created")
    for row in rows:
        mark = "*" if row["live"] else " "
        recall = "-" if row["recall"] is None else f"{row['recall']:.3f}"
        typer.echo(
            f"{mark} {row['version']:<8} {row['count']:>9} {row['kind']:<8} {recall:>9}  "
            f"{row['operation']:<7} {row['created']}"
        )


@index_app.command("activate")
def activate(
    version: str = typer.Argument(..., help="Version to make live (e.g. v0001)."),
    index_dir: Path | None = typer.Option(None, "--index-dir", help=INDEX_DIR_HELP),
) -> None:
    """Point CURRENT at VERSION (roll back or forward) after verifying it loads."""
    from gaitsearch.index.maintenance import activate_version

    try:
        previous = activate_version(_index_dir(index_dir), version)
    except _known_errors() as exc:
        fail(str(exc))
    typer.echo(f"live version: {version} (was {previous or 'none'})")


@index_app.command("gc")
def gc(
    keep: int = typer.Option(..., "--keep", min=1, help="Newest versions to keep (plus live)."),
    index_dir: Path | None = typer.Option(None, "--index-dir", help=INDEX_DIR_HELP),
) -> None:
    """Delete old versions, keeping the KEEP newest and always the live one."""
    from gaitsearch.index.maintenance import sweep

    try:
        report = sweep(_index_dir(index_dir), keep)
    except _known_errors() as exc:
        fail(str(exc))
    except OSError as exc:
        fail(os_error_line(exc))
    for line in report.skipped:
        typer.secho(
            f"skipped: {line} (left as it is; remove it by hand if it should go)",
            fg=typer.colors.YELLOW,
            err=True,
        )
    removed, partials = report.removed, report.partials
    typer.echo(
        f"removed {len(removed)} version(s){': ' + ', '.join(removed) if removed else ''}"
        + (f"; {len(partials)} partial build(s)" if partials else "")
        + (f"; left {len(report.skipped)} alone" if report.skipped else "")
    )


@index_app.command("split")
def split(
    data: Path = typer.Option(..., "--data", help="Gallery directory to split."),
    parts: int = typer.Option(..., "--parts", min=2, help="Number of parts (shards), 2-256."),
    out: Path = typer.Option(..., "--out", help="New directory for OUT/part-NN galleries."),
) -> None:
    """Split a gallery into PARTS galleries by a hash of each walk's id (sequence files are
    symlinked, not copied): build each part into its own index, then list them with
    ``gaitsearch index shards``."""
    from gaitsearch.index.shards import ShardError, split_gallery

    try:
        made = split_gallery(data, parts, out)
    except ShardError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(os_error_line(exc))
    for path, count in made:
        typer.echo(f"{path}: {count} walks")


@index_app.command("shards")
def shards(
    root: Path = typer.Option(
        ..., "--root", help="Directory for shards.json: serve and search it as an index."
    ),
    index_dirs: list[Path] = typer.Argument(..., help="The shards' index directories."),
) -> None:
    """Write a shard list: ROOT then serves as one index over INDEX_DIRS (each an ordinary
    index, built and versioned on its own; one checkpoint for all, walk ids unique)."""
    from gaitsearch.index.shards import ShardError, sharded_version, write_shard_list

    try:
        path, count = write_shard_list(root, index_dirs)
        version = sharded_version(root)
    except (ShardError, *_known_errors()) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(os_error_line(exc))
    typer.echo(f"{path}: {len(index_dirs)} shards, {count} walks, version {version}")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.add_typer(index_app, name="index")
