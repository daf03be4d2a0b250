"""CLI commands for the model area: ``train``, ``eval``, ``classify``, ``import densegait``.

Heavy imports (torch, sentence-transformers) happen inside the commands.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional, get_args

import typer
from gaitsearch.service.cli_errors import fail

import_app = typer.Typer(
    name="import",
    help="Import external datasets into the gallery format.",
    no_args_is_help=True,
)

DENSEGAIT_HELP = """Import DenseGait (or the paper's training file) into a gallery directory.

Two input layouts:

\b
(a) per-tracklet arrays: --tracklets DIR holding <id>.npy files, each float32 (T, 18, 3)
    OpenPose-18 x, y, confidence; plus --attributes TABLE, a CSV or JSON table with one row
    per tracklet: column "id" (the file stem), optional "fps" and "description", and one
    column per DenseGait label (e.g. "male", "young-adult", "backpack", "sneakers") holding
    a soft score in [0, 1]. JSON: a list of such objects, or {id: {label: score, ...}}.
    Labels scoring >= --threshold are kept.
(b) the paper's joblib file: --joblib FILE, a list of {"joints": (T, 18, 3), "text": caption,
    "feature_id": "male,adult,backpack,..."}. WARNING: joblib/pickle files run code when
    loaded; only import a file you trust.

Sequences stored with y pointing up are detected (head above feet) and flipped. DenseGait
labels map onto the gaitsearch vocabulary where the mapping is clear (gender, age, build,
view, some carrying and footwear); the raw labels are kept in attributes["densegait"].
Existing captions are kept; tracklets without one are described from their attributes.
"""


def _checkpoint_and_encoder(checkpoint: Path | None):  # type: ignore[no-untyped-def]
    from gaitsearch.model.checkpoint import (
        CheckpointError,
        load_checkpoint,
        matching_text_encoder,
    )

    try:
        model = load_checkpoint(checkpoint)
        encoder = matching_text_encoder(model)
    except CheckpointError as exc:
        fail(str(exc))
    return model, encoder


def _train_command() -> Callable[..., None]:
    """``gaitsearch train``: its options are :class:`TrainConfig`'s fields (help = the field
    description), all optional on top of ``--recipe`` except the run's ``--data``/``--out``.
    Only pydantic is imported for this; torch loads when the command runs."""
    from gaitsearch.model.train_config import TrainConfig, flag
    from gaitsearch.model.train_recipe import shipped_recipes

    params = [
        inspect.Parameter(
            "recipe",
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(
                None,
                "--recipe",
                help="A shipped recipe (" + ", ".join(shipped_recipes()) + ") or a recipe "
                "JSON file; the flags below override its settings.",
            ),
            annotation=Optional[str],  # noqa: UP045 (typer reads the annotation at runtime)
        )
    ]
    for name, field in TrainConfig.model_fields.items():
        kind = next(a for a in get_args(field.annotation) or (field.annotation,) if a is not None)
        kind = kind if kind is not type(None) else str
        names = [f"{flag(name)}/--no-{flag(name)[2:]}"] if kind is bool else [flag(name)]
        if field.is_required():
            option = typer.Option(..., *names, help=field.description)
            annotation: Any = kind
        else:
            shown = "" if field.default is None else f" (default: {field.default})"
            option = typer.Option(None, *names, help=f"{field.description}{shown}")
            annotation = Optional[kind]  # noqa: UP045
        params.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation
            )
        )

    def train_cmd(**options: Any) -> None:
        """Train the motion encoder against the frozen text encoder's description embeddings."""
        _run_training(options)

    train_cmd.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    train_cmd.__annotations__ = {p.name: p.annotation for p in params}
    return train_cmd


def _run_training(options: dict[str, Any]) -> None:
    from gaitsearch.model.gallery import GalleryError
    from gaitsearch.model.text_encoder import TextEncoderError, load_text_encoder
    from gaitsearch.model.train import train
    from gaitsearch.model.train_recipe import RecipeError, config_from

    try:
        cfg = config_from(options.pop("recipe"), options)
    except RecipeError as exc:
        fail(str(exc))
    if cfg.epochs is None and cfg.minutes is None:
        fail("give --epochs, --minutes, or both (or a --recipe with a budget)")
    if cfg.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            fail("--device cuda: no CUDA GPU is available (use --device cpu)")
    try:
        encoder = load_text_encoder()
        summary = train(cfg, encoder)
    except (GalleryError, TextEncoderError, FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    summary.pop("history", None)
    typer.echo(json.dumps(summary, indent=2, default=str))


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""

    app.command("train")(_train_command())

    @app.command("eval")
    def eval_cmd(
        data: Path = typer.Option(..., "--data", help="Gallery directory to search."),
        queries: Path = typer.Option(..., "--queries", help="JSONL: {query, relevant: [ids]}."),
        checkpoint: Path | None = typer.Option(
            None, help="Checkpoint directory (default: the shipped one)."
        ),
        seed: int = typer.Option(0, help="Seed of the random-ranking baseline."),
        extras: bool = typer.Option(
            True, help="Also TMR batches-of-32 and zero-shot attribute AUC."
        ),
    ) -> None:
        """Text-to-gait retrieval metrics as one JSON object (random ranking beside them)."""
        from gaitsearch.model.embedding_cache import EmbeddingCache
        from gaitsearch.model.evaluate import EvaluationError, evaluate
        from gaitsearch.model.gallery import GalleryError
        from gaitsearch.model.query_pipeline import PipelineError, QueryPipeline

        model, encoder = _checkpoint_and_encoder(checkpoint)
        try:
            with EmbeddingCache(encoder) as cache:
                pipeline = QueryPipeline(model, encoder, encode_texts=cache.encode)
                result = evaluate(data, queries, pipeline, seed=seed, extras=extras)
        except (EvaluationError, GalleryError, PipelineError) as exc:
            fail(str(exc))
        typer.echo(json.dumps(result, indent=2))

    @app.command("classify")
    def classify_cmd(
        sequence: Path = typer.Argument(..., help="A (T, 18, 3) or COCO (T, 17, 3) .npy file."),
        labels: str = typer.Option(
            ..., "--labels", help='Comma-separated labels, e.g. "running,limping,texting".'
        ),
        fps: float = typer.Option(25.0, help="Frame rate of the sequence."),
        checkpoint: Path | None = typer.Option(None, help="Checkpoint (default: shipped)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """Zero-shot: rank the given labels for one skeleton sequence."""
        import numpy as np
        from gaitsearch.model.classify import parse_labels
        from gaitsearch.model.query_pipeline import PipelineError, QueryPipeline
        from gaitsearch.model.skeleton import SkeletonError, to_openpose18

        names = parse_labels(labels)
        if not names:
            fail("--labels: give at least one label")
        if not 0 < fps <= 1000:
            fail(f"--fps: {fps} is not a frame rate")
        try:
            arr = np.load(sequence, allow_pickle=False)
            seq = to_openpose18(arr, str(sequence))
        except FileNotFoundError:
            fail(f"{sequence}: no such file")
        except (OSError, ValueError) as exc:
            if isinstance(exc, SkeletonError):
                fail(str(exc))
            fail(f"{sequence}: not a readable .npy array ({exc})")
        model, encoder = _checkpoint_and_encoder(checkpoint)
        try:
            ranked = QueryPipeline(model, encoder).rank_labels(seq, fps, names)
        except PipelineError as exc:
            fail(str(exc))
        if as_json:
            typer.echo(json.dumps([{"label": n, "score": s} for n, s in ranked]))
        else:
            for name, score in ranked:
                typer.echo(f"{score:+.4f}  {name}")

    @import_app.command("densegait", help=DENSEGAIT_HELP)
    def import_densegait(
        out: Path = typer.Option(..., "--out", help="Gallery directory to create."),
        tracklets: Path | None = typer.Option(None, help="(a) directory of <id>.npy tracklets."),
        attributes: Path | None = typer.Option(None, help="(a) CSV or JSON attribute table."),
        joblib_file: Path | None = typer.Option(
            None, "--joblib", help="(b) the paper's joblib file (runs code: trusted files only)."
        ),
        fps: float = typer.Option(25.0, help="Frame rate when the input does not say."),
        threshold: float = typer.Option(0.5, help="(a) soft-label score that counts as present."),
        strict: bool = typer.Option(False, help="Refuse the import at the first bad tracklet."),
    ) -> None:
        from gaitsearch.model.densegait import DenseGaitError, import_joblib, import_tracklets
        from gaitsearch.model.gallery import GalleryError

        if (joblib_file is None) == (tracklets is None):
            fail("give either --tracklets DIR with --attributes TABLE, or --joblib FILE")
        try:
            if joblib_file is not None:
                typer.secho(
                    f"warning: loading {joblib_file} with joblib runs any code it contains; "
                    "only import files you trust",
                    fg=typer.colors.YELLOW,
                    err=True,
                )
                report = import_joblib(joblib_file, out, fps=fps, strict=strict)
            else:
                if attributes is None:
                    fail("--tracklets needs --attributes TABLE (CSV or JSON)")
                report = import_tracklets(
                    tracklets, attributes, out, fps=fps, threshold=threshold, strict=strict
                )
        except (DenseGaitError, GalleryError) as exc:
            fail(str(exc))
        for line in report.problems[:20]:
            typer.secho(f"skipped: {line}", err=True)
        typer.echo(json.dumps({"out": str(out), "imported": report.ok, "skipped": report.skipped}))

    from gaitsearch.service.cli_data import register_import

    register_import(import_app)
    app.add_typer(import_app, name="import")
