"""``gaitsearch lean``: the static query encoder and the lean checkpoint fitted on it (see
:mod:`gaitsearch.model.static_encoder` and :mod:`gaitsearch.model.lean`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from gaitsearch.service.cli_errors import fail

BUILD_HELP = (
    "Derive a lean checkpoint from an attribute-space checkpoint: the same motion encoder, "
    "its query head refitted from scratch on a static text encoder (default: "
    "all-MiniLM-L6-v2-static256, distilled offline from the packaged MiniLM on first use), "
    "query understanding refitted and recalibrated. Writes a new checkpoint directory, which "
    "needs its own index (gaitsearch index build --checkpoint OUT)."
)


def register(app: typer.Typer) -> None:
    """Add the ``lean`` command group to the main app."""
    group = typer.Typer(help="Lean query encoder: static embeddings and the lean checkpoint.")

    @group.command("distill", help="Build the static text encoder (offline; ~35 s) and print it.")
    def distill_cmd(
        name: str = typer.Option(
            "all-MiniLM-L6-v2-static256", "--name", help="Static encoder recipe."
        ),
    ) -> None:
        from gaitsearch.model.static_encoder import RECIPES, StaticTextEncoder
        from gaitsearch.model.text_encoder import TextEncoderError

        if name not in RECIPES:
            fail(f"unknown static encoder recipe {name!r}; known: {', '.join(RECIPES)}")
            return
        try:
            encoder = StaticTextEncoder(name)
        except TextEncoderError as exc:
            fail(str(exc))
            return
        typer.echo(json.dumps(encoder.describe()))

    @group.command("build", help=BUILD_HELP)
    def build_cmd(
        out: Path = typer.Option(..., "--out", help="New checkpoint directory."),
        checkpoint: Path | None = typer.Option(
            None, "--checkpoint", help="Source checkpoint (default: the shipped one)."
        ),
        text_encoder: str | None = typer.Option(
            None, "--text-encoder", help="Static recipe name or model2vec directory."
        ),
        val_data: Path | None = typer.Option(
            None, "--val-data", help="Gallery with queries.jsonl: re-pick the query temperature."
        ),
        seed: int = typer.Option(0, "--seed", min=0),
        head_steps: int = typer.Option(3000, "--head-steps", min=1),
        fit_steps: int = typer.Option(3000, "--fit-steps", min=1),
        cache: Path | None = typer.Option(None, "--cache", help="Text embedding cache file."),
    ) -> None:
        from gaitsearch.model.checkpoint import CheckpointError
        from gaitsearch.model.lean import derive_lean_checkpoint
        from gaitsearch.model.text_encoder import TextEncoderError

        try:
            summary = derive_lean_checkpoint(
                out, checkpoint, text_encoder, seed=seed, head_steps=head_steps,
                fit_steps=fit_steps, val_data=val_data, cache=cache,
                log=lambda m: typer.echo(m, err=True),
            )  # fmt: skip
        except (CheckpointError, TextEncoderError, ValueError) as exc:
            fail(str(exc))
            return
        typer.echo(json.dumps(summary))

    app.add_typer(group, name="lean")
