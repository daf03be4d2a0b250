"""CLI commands for the model area: ``train``, ``eval``, ``classify``, ``import densegait``.

Heavy imports (torch, sentence-transformers) happen inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path

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


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""

    @app.command("train")
    def train_cmd(
        data: Path = typer.Option(..., "--data", help="Training gallery directory."),
        out: Path = typer.Option(
            ..., "--out", help="Checkpoint directory to write (the best model is kept there)."
        ),
        preset: str = typer.Option(
            "small", help="Motion encoder preset: mini (shipped checkpoint), small, tiny, paper."
        ),
        loss: str = typer.Option("infonce", help="infonce, triplet (the paper's) or mse."),
        epochs: float | None = typer.Option(None, help="Passes over the training set."),
        minutes: float | None = typer.Option(
            None, help="Wall-clock budget; training stops at whichever limit comes first."
        ),
        batch_size: int = typer.Option(128, help="Sequences per step."),
        lr: float = typer.Option(1e-3, help="Peak learning rate (AdamW)."),
        weight_decay: float = typer.Option(0.05, help="AdamW weight decay."),
        warmup_steps: int = typer.Option(200, help="Linear warm-up steps before cosine decay."),
        seed: int = typer.Option(0, help="Random seed (split, batches, augmentation, init)."),
        device: str = typer.Option("cpu", help="cpu or cuda (cuda when a GPU is there)."),
        threads: int | None = typer.Option(None, help="CPU threads for torch."),
        descriptions_per_step: int = typer.Option(
            1, help="Descriptions sampled per sequence each step; their mean is the target."
        ),
        captions: str = typer.Option(
            "attributes",
            help="attributes: query-like captions tagged with the attributes they name, every "
            "walker a caption fits is a positive (multi-positive InfoNCE); descriptions: each "
            "sequence's own descriptions, one positive (the paper's setting).",
        ),
        captions_per_sequence: int = typer.Option(
            8, help="Attribute-tagged captions generated (and embedded once) per sequence."
        ),
        head: str = typer.Option(
            "attributes",
            help="attributes: the attribute bottleneck (per-group softmax, then a map into the "
            "text space; needs attributes in the gallery); projection: an MLP straight into "
            "the text space (the paper's).",
        ),
        attribute_weight: float = typer.Option(
            1.0, help="Weight of the per-group attribute cross-entropy (0: off)."
        ),
        space: str = typer.Option(
            "attributes",
            help="Search space. attributes (ours): walks become attribute log-likelihood "
            "ratios, queries go through a query head fitted on the training captions; the "
            "encoder trains on recognition only (needs attributes in the gallery). text: "
            "walks land in the frozen text space (the paper's; --head, --loss, --captions "
            "apply).",
        ),
        query_temperature: float | None = typer.Option(
            None,
            help="Softmax temperature of the query head (attribute space). Default: chosen "
            "on the validation queries (--val-data) among 0.1, 0.25, 0.5, 1; 0.25 without.",
        ),
        n_frames: int = typer.Option(32, help="Frames per training window."),
        target_fps: float = typer.Option(12.5, help="Frame rate windows are resampled to."),
        centre: str = typer.Option("pelvis", help="pelvis, or first_joint (the paper)."),
        scale_normalise: bool = typer.Option(
            True, help="Divide by body height (--no-scale-normalise: the paper)."
        ),
        val_data: Path | None = typer.Option(
            None, help="Validation gallery with queries.jsonl (else a held-out slice)."
        ),
        eval_every: int = typer.Option(250, help="Validate (and keep the best) every N steps."),
        work_dir: Path | None = typer.Option(
            None, help="Resumable training state (default under ~/.cache/gaitsearch/runs)."
        ),
        resume: bool = typer.Option(False, "--resume", help="Continue from the work dir."),
        progress: bool = typer.Option(True, help="Show a progress bar."),
    ) -> None:
        """Train the motion encoder against the frozen text encoder's description embeddings."""
        from gaitsearch.model.gallery import GalleryError
        from gaitsearch.model.text_encoder import TextEncoderError, load_text_encoder
        from gaitsearch.model.train import TrainConfig, train
        from pydantic import ValidationError

        if epochs is None and minutes is None:
            fail("give --epochs, --minutes, or both")
        if device == "cuda":
            import torch

            if not torch.cuda.is_available():
                fail("--device cuda: no CUDA GPU is available (use --device cpu)")
        try:
            cfg = TrainConfig(
                data=str(data), out=str(out), preset=preset, loss=loss, epochs=epochs,
                minutes=minutes, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                warmup_steps=warmup_steps, seed=seed, device=device, threads=threads,
                descriptions_per_step=descriptions_per_step, captions=captions,
                captions_per_sequence=captions_per_sequence, head=head,
                attribute_weight=attribute_weight, space=space,
                query_temperature=query_temperature, n_frames=n_frames,
                target_fps=target_fps, centre=centre,
                scale_normalise=scale_normalise, val_data=str(val_data) if val_data else None,
                eval_every=eval_every, work_dir=str(work_dir) if work_dir else None,
                resume=resume, progress=progress,
            )  # fmt: skip
        except ValidationError as exc:
            first = exc.errors()[0]
            fail(f"--{'-'.join(str(p) for p in first['loc'])}: {first['msg']}")
        try:
            encoder = load_text_encoder()
            summary = train(cfg, encoder)
        except (GalleryError, TextEncoderError, FileNotFoundError, ValueError) as exc:
            fail(str(exc))
        summary.pop("history", None)
        typer.echo(json.dumps(summary, indent=2, default=str))

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

    app.add_typer(import_app, name="import")
