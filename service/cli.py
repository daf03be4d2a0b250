"""The ``gaitsearch`` command line (typer).

Each area registers its own commands from a small module; heavy imports (torch, faiss,
sentence-transformers) happen inside the commands so ``gaitsearch --help`` is instant.
"""

from __future__ import annotations

import logging
import os

import typer
from gaitsearch.service import (
    cli_data,
    cli_index,
    cli_lean,
    cli_model,
    cli_serve,
    cli_understanding,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(
    name="gaitsearch",
    help="Find walking people by describing them: text-to-gait retrieval over skeleton "
    "tracklets. Start with `gaitsearch run` (demo gallery + shipped checkpoint + web page).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


cli_data.register(app)
cli_model.register(app)
cli_index.register(app)
cli_serve.register(app)
cli_understanding.register(app)
cli_lean.register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
