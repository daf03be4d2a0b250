"""Maintenance of an index directory: list versions, activate one, collect garbage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gaitsearch.index import versions
from gaitsearch.index.loaded_index import IndexLoadError, load_index
from gaitsearch.index.manifest import IndexManifest


def version_table(index_dir: Path) -> list[dict[str, Any]]:
    """One row per published version, oldest first; unreadable manifests are shown as such."""
    live = versions.current_version(index_dir)
    rows = []
    for name in versions.list_versions(index_dir):
        row: dict[str, Any] = {"version": name, "live": name == live}
        try:
            m = IndexManifest.read(versions.version_path(index_dir, name))
            row.update(
                count=m.count,
                kind=m.kind,
                recall=m.recall.recall_at_10 if m.recall else None,
                operation=m.operation,
                created=m.created,
            )
        except (OSError, ValueError, RecursionError):
            row.update(count="?", kind="broken", recall=None, operation="?", created="?")
        rows.append(row)
    return rows


def activate_version(index_dir: Path, version: str) -> str | None:
    """Make ``version`` live after verifying it loads; returns the previous live version."""
    index_dir = Path(index_dir)
    with versions.write_lock(index_dir):
        try:
            versions.version_path(index_dir, version)
        except ValueError as exc:
            raise IndexLoadError(str(exc)) from exc
        load_index(index_dir, version).close()
        previous = versions.current_version(index_dir)
        versions.set_current(index_dir, version)
    return previous


def collect_garbage(index_dir: Path, keep: int) -> tuple[list[str], list[str]]:
    """Delete all but the ``keep`` newest versions (the live one always stays) and any
    partial builds; returns (removed versions, removed partials)."""
    if keep < 1:
        raise ValueError(f"--keep must be at least 1, got {keep}")
    index_dir = Path(index_dir)
    if not index_dir.is_dir():
        raise FileNotFoundError(f"{index_dir}: no such index directory")
    with versions.write_lock(index_dir):
        partials = versions.clean_partials(index_dir)
        live = versions.current_version(index_dir)
        names = versions.list_versions(index_dir)
        keep_set = set(names[-keep:]) | ({live} if live else set())
        removed = []
        for name in names:
            if name not in keep_set:
                versions.remove_version(index_dir, name)
                removed.append(name)
    return removed, partials
