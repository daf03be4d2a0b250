"""One clear error line instead of a traceback, for every CLI command."""

from __future__ import annotations

import typer


def fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def os_error_line(exc: OSError) -> str:
    """``<file>: <the OS error in words>`` ("no space left on device" for ENOSPC)."""
    reason = (exc.strerror or str(exc)).lower() if exc.strerror else str(exc)
    where = exc.filename if exc.filename is not None else ""
    return f"{where}: {reason}" if where else reason
