"""CLI commands of the service: ``serve``, ``search`` and ``run`` (registered by service/cli.py).

Heavy imports stay inside the commands so ``gaitsearch --help`` is instant.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer
from gaitsearch.service.cli_errors import fail

DEMO_COUNT = 2000
DEMO_SEED = 7

INDEX_DIR_HELP = "Index directory (versions/ + CURRENT). Default: $GAITSEARCH_INDEX_DIR."
CHECKPOINT_HELP = "Motion encoder checkpoint directory. Default: the shipped one."


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.command("serve")(serve)
    app.command("search")(search)
    app.command("run")(run)


def _settings(**overrides: Any):
    from gaitsearch.service.settings import Settings

    try:
        base = Settings()
    except Exception as exc:  # noqa: BLE001 - pydantic explains which variable is wrong
        fail(f"environment: invalid GAITSEARCH_* setting ({exc})")
    values = {k: v for k, v in overrides.items() if v is not None}
    return base.model_copy(update=values)


def _preload(settings) -> tuple[Any, Any]:
    """Load checkpoint, text encoder and index once before uvicorn starts, so a problem is
    one clear line instead of a failed server start-up."""
    from gaitsearch.index.loaded_index import IndexLoadError
    from gaitsearch.index.retriever import Retriever, RetrieverError
    from gaitsearch.index.shards import is_sharded, live_version
    from gaitsearch.index.versions import CurrentFileError

    index_dir = Path(settings.index_dir)
    try:
        live = live_version(index_dir)  # an index directory or a shard list root
    except (CurrentFileError, IndexLoadError) as exc:
        fail(str(exc))
    if live is None and is_sharded(index_dir):
        fail(f"{index_dir}: a shard of this shard list has no published version yet")
    if live is None:
        fail(
            f"{index_dir / 'CURRENT'}: missing; no index published in {index_dir} "
            "(build one: gaitsearch index build --data DIR --index-dir D)"
        )
    try:
        retriever = Retriever.open(index_dir, settings.checkpoint, settings.text_encoder)
    except RetrieverError as exc:
        fail(str(exc))
    retriever.close()
    model, encoder = retriever.model, retriever.text_encoder
    return model, encoder


def _serve(settings, banner: str | None = None) -> None:
    import uvicorn
    from gaitsearch.service.app import create_app
    from gaitsearch.service.http_guard import uvicorn_options

    model, encoder = _preload(settings)
    url = f"http://{settings.host}:{settings.port}"

    def ready() -> None:
        typer.secho(banner or f"gaitsearch is serving {url}", fg=typer.colors.GREEN, err=True)

    app = create_app(settings, model=model, text_encoder=encoder, on_ready=ready)
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            **uvicorn_options(settings),
        )
    except OSError as exc:
        fail(f"{settings.host}:{settings.port}: cannot listen ({exc})")


def serve(
    index_dir: Path = typer.Option(None, "--index-dir", help=INDEX_DIR_HELP),
    host: str = typer.Option(None, "--host", help="Interface to listen on [127.0.0.1]."),
    port: int = typer.Option(None, "--port", min=0, max=65535, help="TCP port [8000]."),
    watch: bool = typer.Option(
        False, "--watch", help="Follow CURRENT: load a newly published version by itself."
    ),
    checkpoint: Path = typer.Option(None, "--checkpoint", help=CHECKPOINT_HELP),
) -> None:
    """Serve the search API and web page over an index (uvicorn).

    Settings also come from GAITSEARCH_* environment variables (see the README);
    options given here win. POST /admin/reload needs GAITSEARCH_ADMIN_TOKEN.
    """
    settings = _settings(
        index_dir=index_dir, host=host, port=port, watch=watch or None, checkpoint=checkpoint
    )
    _serve(settings)


def search(
    text: str = typer.Argument(..., help="What the walking person looks like."),
    index_dir: Path = typer.Option(None, "--index-dir", help=INDEX_DIR_HELP),
    k: int = typer.Option(10, "-k", "--k", min=1, max=1000, help="How many results."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON response instead."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help=CHECKPOINT_HELP),
) -> None:
    """Search an index from the command line (no server needed): the same pipeline and
    the same hits as GET /search over the same index."""
    from gaitsearch.index.retriever import Retriever, RetrieverError, results_json
    from gaitsearch.service.schemas import MAX_QUERY_CHARS

    if not text.strip():
        fail("TEXT: the query must not be empty")
    if len(text) > MAX_QUERY_CHARS:
        fail(f"TEXT: the query is longer than {MAX_QUERY_CHARS} characters")
    settings = _settings(index_dir=index_dir, checkpoint=checkpoint)
    try:
        retriever = Retriever.open(settings.index_dir, settings.checkpoint, settings.text_encoder)
    except RetrieverError as exc:
        fail(str(exc))
    index = retriever.index
    assert index is not None
    results = results_json(retriever.search([text], k)[0])
    understood = retriever.understood(text)
    if as_json:
        doc = {
            "query": text,
            "k": k,
            "index_version": index.version,
            "understood": understood.to_dict(),
            "results": results,
        }
        if not understood.grounded:
            doc["detail"] = understood.detail
        typer.echo(json.dumps(doc, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    if not understood.grounded:
        typer.echo(f"not understood: {understood.detail}")
        return
    read = " · ".join(f"{t.name}={t.value} ({t.confidence:.2f})" for t in understood.terms)
    line = f"understood: {read}" if read else "understood: (no attribute terms)"
    if understood.ignored:
        line += f"   ignored: {' '.join(understood.ignored)}"
    typer.echo(line)

    table = Table(title=f"{text!r}: index {index.version}, {index.count} walks")
    for col in ("rank", "score", "id", "attributes", "description"):
        table.add_column(col)
    for r in results:
        attrs = r["metadata"].get("attributes") or {}
        table.add_row(
            str(r["rank"]),
            f"{r['score']:.3f}",
            r["id"],
            ", ".join(f"{v}" for v in attrs.values()),
            r["metadata"].get("description") or "",
        )
    Console().print(table)


def run(
    data_dir: Path = typer.Option(
        None,
        "--data-dir",
        help="Demo folder (gallery/ + index/). Default: $GAITSEARCH_DATA_DIR or ./var/demo.",
    ),
    count: int = typer.Option(DEMO_COUNT, "--count", min=10, help="Demo gallery size."),
    host: str = typer.Option(None, "--host", help="Interface to listen on [127.0.0.1]."),
    port: int = typer.Option(None, "--port", min=0, max=65535, help="TCP port [8000]."),
) -> None:
    """The embedded demo: generate a synthetic gallery, index it with the shipped checkpoint,
    and serve the web page. A second run reuses both."""
    settings = _settings(host=host, port=port)
    root = Path(data_dir or os.environ.get("GAITSEARCH_DATA_DIR") or settings.data_dir)
    gallery, index_dir = root / "gallery", root / "index"
    from gaitsearch.index.loaded_index import current_version

    if current_version(index_dir) is None:
        _make_demo_index(gallery, index_dir, count, settings.checkpoint)
    else:
        typer.echo(f"reusing the demo index in {index_dir}", err=True)
    settings = settings.model_copy(update={"index_dir": index_dir, "data_dir": root})
    url = f"http://{settings.host}:{settings.port}"
    _serve(settings, banner=f"gaitsearch demo is ready: open {url}")


def _make_demo_index(gallery: Path, index_dir: Path, count: int, checkpoint: Path | None) -> None:
    from gaitsearch.index.build import IndexBuildError, build_index
    from gaitsearch.model.checkpoint import CheckpointError, default_checkpoint_path
    from gaitsearch.model.gallery import GalleryError

    if checkpoint is None and not (default_checkpoint_path() / "config.json").is_file():
        fail(f"{default_checkpoint_path()}: the shipped checkpoint is missing")
    if not (gallery / "metadata.jsonl").is_file():
        from gaitsearch.model.synth import synthesize_gallery

        if gallery.exists() and any(gallery.iterdir()):
            fail(f"{gallery}: exists but holds no metadata.jsonl (remove it to regenerate)")
        from rich.progress import Progress

        with Progress() as progress:
            task = progress.add_task(f"demo gallery ({count} walks)", total=count)
            synthesize_gallery(
                gallery,
                count=count,
                seed=DEMO_SEED,
                on_progress=lambda n: progress.update(task, completed=n),
            )
    typer.echo(f"indexing {gallery} into {index_dir} …", err=True)
    try:
        result = build_index(gallery, index_dir, checkpoint)
    except (IndexBuildError, GalleryError, CheckpointError) as exc:
        fail(str(exc))
    typer.echo(result.summary(), err=True)
