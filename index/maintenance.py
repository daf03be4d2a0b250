"""Maintenance of an index directory: list versions, activate one, collect garbage."""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass
class GarbageReport:
    """What ``gc`` did: versions and partial builds removed, and one line per directory it
    left alone (a symbolic link, or one that holds a link; see ``versions.remove_tree``)."""

    removed: list[str] = field(default_factory=list)
    partials: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def sweep(index_dir: Path, keep: int) -> GarbageReport:
    """Delete all but the ``keep`` newest versions (the live one always stays) and any
    partial builds. Nothing is deleted through a symbolic link, nor outside ``index_dir``:
    such a directory is left as it is and reported in ``skipped``."""
    if keep < 1:
        raise ValueError(f"--keep must be at least 1, got {keep}")
    index_dir = Path(index_dir)
    if not index_dir.is_dir():
        raise FileNotFoundError(f"{index_dir}: no such index directory")
    report = GarbageReport()
    with versions.write_lock(index_dir):
        report.partials, report.skipped = versions.sweep_partials(index_dir)
        live = versions.current_version(index_dir)
        names = versions.list_versions(index_dir)
        keep_set = set(names[-keep:]) | ({live} if live else set())
        for name in names:
            if name in keep_set:
                continue
            try:
                reason = versions.remove_version(index_dir, name)
            except OSError as exc:
                reason = f"{exc.filename or name}: {exc.strerror or exc}"
            if reason is None:
                report.removed.append(name)
            else:
                report.skipped.append(f"{name}: {reason}")
    return report


def collect_garbage(index_dir: Path, keep: int) -> tuple[list[str], list[str]]:
    """:func:`sweep`, returning (removed versions, removed partials)."""
    report = sweep(index_dir, keep)
    return report.removed, report.partials
