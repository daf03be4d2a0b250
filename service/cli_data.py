"""CLI commands for the data area: ``synth`` (the synthetic gait world) and ``describe``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from gaitsearch.service.cli_errors import fail

SYNTH_HELP = (
    "Generate a synthetic gallery of walking people.\n\n"
    "Writes DIR/sequences/<id>.npy (float32 (T, 18, 3) OpenPose-18 pixels, y down), "
    "DIR/metadata.jsonl (attributes and several template descriptions per sequence) and "
    "DIR/queries.jsonl (evaluation queries in a held-out phrasing, each with every relevant "
    "id). The same --seed gives the same bytes. --out must be empty or absent."
)

DESCRIBE_HELP = (
    "(Re)write the descriptions of a gallery directory from its attributes.\n\n"
    "Uses the template describer, or with --llm an OpenAI-compatible chat endpoint configured "
    "by GAITSEARCH_LLM_BASE_URL, GAITSEARCH_LLM_MODEL and GAITSEARCH_LLM_API_KEY (answers are "
    "cached on disk in GAITSEARCH_LLM_CACHE, so a re-run does not call again). "
    "metadata.jsonl is replaced atomically, only when every sequence is described."
)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""

    @app.command("synth", help=SYNTH_HELP)
    def synth_cmd(
        out: Path = typer.Option(..., "--out", help="Directory to create (must be empty)."),
        count: int = typer.Option(200, "--count", min=1, help="Number of sequences."),
        seed: int = typer.Option(
            0, "--seed", min=0, help="Random seed, >= 0 (same seed, same bytes)."
        ),
        preview: Path | None = typer.Option(
            None, "--preview", help="Also draw a contact sheet of stick figures to this PNG."
        ),
        per_sequence: int = typer.Option(
            4, "--per-sequence", min=1, max=20, help="Template descriptions per sequence (+0/1)."
        ),
        workers: int = typer.Option(
            min(2, os.cpu_count() or 1),
            "--workers",
            min=1,
            max=64,
            help="Processes generating chunks (the output is the same for any number).",
        ),
    ) -> None:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            fail(f"{out}: exists and is not an empty directory (choose a new --out)")
        if preview is not None and preview.suffix.lower() != ".png":
            fail(f"{preview}: --preview must be a .png file")
        from gaitsearch.model.gallery import GalleryError
        from gaitsearch.model.synth import synthesize_gallery
        from rich.progress import Progress

        with Progress(transient=True) as progress:
            task = progress.add_task("synthesising", total=count)
            try:
                summary = synthesize_gallery(
                    out,
                    count,
                    seed,
                    preview=preview,
                    per_sequence=per_sequence,
                    on_progress=lambda n: progress.update(task, completed=n),
                    workers=workers,
                )
            except (GalleryError, OSError, ValueError) as exc:
                fail(f"{out}: {exc}" if isinstance(exc, ValueError) else str(exc))
        summary.pop("attributes", None)
        typer.echo(json.dumps(summary))

    @app.command("describe", help=DESCRIBE_HELP)
    def describe_cmd(
        data: Path = typer.Argument(..., help="Gallery directory (metadata.jsonl is rewritten)."),
        llm: bool = typer.Option(False, "--llm", help="Use the configured LLM endpoint."),
        per_sequence: int = typer.Option(
            4, "--per-sequence", min=1, max=20, help="Descriptions per sequence."
        ),
        seed: int = typer.Option(0, "--seed", help="Template describer seed."),
    ) -> None:
        from gaitsearch.model.describe import TemplateDescriber, describe_gallery
        from gaitsearch.model.gallery import GalleryError, read_metadata
        from rich.progress import Progress

        try:
            total = len(read_metadata(data, strict=True))
        except GalleryError as exc:
            fail(str(exc))
        if llm:
            from gaitsearch.model.llm_describer import LLMDescriber, LLMError

            try:
                describer = LLMDescriber.from_env()
            except LLMError as exc:
                fail(str(exc))
        else:
            describer = TemplateDescriber(seed=seed)
        with Progress(transient=True) as progress:
            task = progress.add_task("describing", total=total)
            try:
                n = describe_gallery(
                    data,
                    describer,
                    per_sequence,
                    on_progress=lambda i: progress.update(task, completed=i),
                )
            except Exception as exc:  # noqa: BLE001 - one clear line, never a traceback
                fail(f"{data}: {exc}")
        typer.echo(json.dumps({"data": str(data), "described": n, "llm": llm}))
