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


BVH_HELP = (
    "Import BVH motion capture as 2D OpenPose-18 windows seen from several cameras.\n\n"
    "Each FILE (HIERARCHY + MOTION, any channel order) goes through forward kinematics; its "
    "joints are mapped by name onto OpenPose-18 (CMU, CMU-Daz, 100STYLE, Mixamo-like "
    "skeletons; nose, eyes and ears placed on the head), seen by orthographic cameras at the "
    "front, oblique and side of the walking direction (from the root trajectory, per window), "
    "resampled to --fps and cut into --window-frame windows every --stride frames. --labels is "
    "a CSV (rows: file,attribute=value,...) or JSON ({file: {attribute: value}}) table; pairs "
    "in the gaitsearch vocabulary (or aliases such as label=angry -> emotion=angry) become "
    "attributes, all labels stay in attributes['bvh']. Every window records its clip and "
    "view. The gallery is written to a temporary directory and renamed to --out when done."
)


def register_import(import_app: typer.Typer) -> None:
    """Add ``import bvh`` to the ``import`` group (next to ``import densegait``)."""

    @import_app.command("bvh", help=BVH_HELP)
    def import_bvh_cmd(
        files: list[Path] = typer.Argument(..., help="BVH files (or directories of them)."),
        out: Path = typer.Option(..., "--out", help="Gallery directory to create (empty)."),
        labels: Path | None = typer.Option(None, "--labels", help="CSV or JSON label table."),
        fps: float = typer.Option(25.0, "--fps", min=5.0, max=120.0, help="Output frame rate."),
        window: int = typer.Option(64, "--window", min=8, help="Frames per window."),
        stride: int = typer.Option(32, "--stride", min=1, help="Frames between windows."),
        views: str = typer.Option(
            "front,oblique,side",
            "--views",
            help="Cameras, comma-separated: front, oblique, side, back.",
        ),
        max_windows: int = typer.Option(
            0, "--max-windows", min=0, help="At most this many windows per clip (0: all)."
        ),
        strict: bool = typer.Option(False, help="Refuse the import at the first bad file."),
    ) -> None:
        from gaitsearch.model.bvh import BvhError, import_bvh
        from gaitsearch.model.gallery import GalleryError
        from rich.progress import Progress

        paths: list[Path] = []
        for f in files:
            paths.extend(sorted(f.glob("*.bvh")) if f.is_dir() else [f])
        with Progress(transient=True) as progress:
            task = progress.add_task("importing", total=len(paths))
            try:
                report = import_bvh(
                    paths,
                    labels,
                    out,
                    fps=fps,
                    window=window,
                    stride=stride,
                    views=[v.strip() for v in views.split(",") if v.strip()],
                    strict=strict,
                    on_progress=lambda n: progress.update(task, completed=n),
                    max_windows=max_windows or None,
                )
            except (BvhError, GalleryError, OSError) as exc:
                fail(str(exc).splitlines()[0])
        for line in report.problems[:20]:
            typer.secho(f"skipped: {line}", err=True)
        typer.echo(
            json.dumps(
                {"out": str(out), "clips": report.clips, "windows": report.ok,
                 "skipped": report.skipped, "turning_windows": report.turning_windows,
                 "opening_frames_dropped": report.opening_frames}
            )
        )  # fmt: skip
