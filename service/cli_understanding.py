"""``gaitsearch understanding fit``: refit a checkpoint's query head for query understanding
(generated negatives, calibration, grounded threshold); see
:mod:`gaitsearch.model.understanding`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from gaitsearch.service.cli_errors import fail

FIT_HELP = (
    "Refit an attribute-space checkpoint's query head with generated off-topic and nonsense "
    "negatives, calibrate term confidences and choose the grounded threshold on validation "
    "data; the motion encoder is unchanged. Writes --out (default: in place)."
)


def register(app: typer.Typer) -> None:
    """Add the ``understanding`` command group to the main app."""
    group = typer.Typer(help="Query understanding (grounding, terms, ignored words).")

    @group.command("fit", help=FIT_HELP)
    def fit_cmd(
        checkpoint: Path | None = typer.Option(
            None, "--checkpoint", help="Checkpoint directory (default: the shipped one)."
        ),
        out: Path | None = typer.Option(None, "--out", help="Where to write (default: in place)."),
        seed: int = typer.Option(0, "--seed", min=0),
        steps: int = typer.Option(3000, "--steps", min=1, help="Query head training steps."),
        cache: Path | None = typer.Option(None, "--cache", help="Text embedding cache file."),
        noise: float = typer.Option(
            1.0,
            "--noise",
            min=0.0,
            help="Norm of the Gaussian noise added to caption embeddings while refitting "
            "(reads unseen synonyms near the training phrasings; 0: none).",
        ),  # fmt: skip
    ) -> None:
        from gaitsearch.model.checkpoint import (
            CheckpointError,
            default_checkpoint_path,
            load_checkpoint,
            matching_text_encoder,
        )
        from gaitsearch.model.embedding_cache import EmbeddingCache
        from gaitsearch.model.understanding import fit_understanding, save_understanding

        try:
            model = load_checkpoint(checkpoint)
            encoder = matching_text_encoder(model)
            entry = fit_understanding(
                model, EmbeddingCache(encoder, cache).encode, seed=seed, steps=steps,
                log=lambda m: typer.echo(m, err=True), noise=noise,
            )  # fmt: skip
        except (CheckpointError, ValueError) as exc:
            fail(str(exc))
            return
        path = save_understanding(model, out or checkpoint or default_checkpoint_path())
        typer.echo(json.dumps({"out": str(path), **entry}))

    app.add_typer(group, name="understanding")
