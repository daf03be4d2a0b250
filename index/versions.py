"""Versioned index directories: ``versions/<v>/`` beside each other, ``CURRENT`` names the live one.

A build writes into ``versions/<v>.partial/`` and renames it to ``versions/<v>/`` only when
every file is written and fsynced; ``CURRENT`` is then replaced atomically (temp file +
``os.replace``). An exclusive ``flock`` on ``.lock`` is held by whoever builds, publishes,
activates or collects garbage, so two writers never publish at once; the kernel drops it when
a process dies, so a ``kill -9`` never leaves a stale lock. Leftover ``*.partial`` directories
can only come from crashed builds and are removed by the next writer.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

VERSIONS_DIR = "versions"
CURRENT_FILE = "CURRENT"
LOCK_FILE = ".lock"
PARTIAL_SUFFIX = ".partial"
_VERSION_RE = re.compile(r"^v(\d{4,})$")


class IndexLockedError(RuntimeError):
    """Another process holds the index directory's write lock."""


class CurrentFileError(ValueError):
    """``CURRENT`` exists but cannot be read as a version name; the message names it."""


def versions_root(index_dir: Path) -> Path:
    return Path(index_dir) / VERSIONS_DIR


def version_path(index_dir: Path, version: str) -> Path:
    if not _VERSION_RE.fullmatch(version):
        raise ValueError(f"{version!r} is not a version name (like v0001)")
    return versions_root(index_dir) / version


@contextmanager
def write_lock(index_dir: Path) -> Iterator[None]:
    """Exclusive, non-blocking writer lock on ``<index_dir>/.lock``."""
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    path = index_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise IndexLockedError(
                f"{path}: another build or maintenance command (pid {holder}) is writing "
                "this index directory; wait for it to finish"
            ) from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def current_version(index_dir: Path) -> str | None:
    """The live version's name, or None if nothing was published yet.

    Raises :class:`CurrentFileError` when ``CURRENT`` is a directory, unreadable, not
    UTF-8 or absurdly long: a caller answers that with one line, never a traceback."""
    path = Path(index_dir) / CURRENT_FILE
    try:
        with path.open("rb") as fh:
            raw = fh.read(256)
    except FileNotFoundError:
        return None
    except OSError as exc:  # a directory, no permission, I/O error
        raise CurrentFileError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    try:
        name = raw.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise CurrentFileError(f"{path}: not UTF-8 text (expected a version name)") from exc
    if len(raw) == 256 or "\n" in name:
        raise CurrentFileError(f"{path}: does not hold one version name (like v0001)")
    return name or None


def set_current(index_dir: Path, version: str) -> None:
    """Point ``CURRENT`` at ``version`` atomically; readers see the old or the new name."""
    index_dir = Path(index_dir)
    if not version_path(index_dir, version).is_dir():
        raise FileNotFoundError(f"{version_path(index_dir, version)}: no such version")
    tmp = index_dir / f"{CURRENT_FILE}.tmp-{os.getpid()}"
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(version + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, index_dir / CURRENT_FILE)
    _fsync_dir(index_dir)


def list_versions(index_dir: Path) -> list[str]:
    """Published versions, oldest first."""
    root = versions_root(index_dir)
    if not root.is_dir():
        return []
    names = [p.name for p in root.iterdir() if p.is_dir() and _VERSION_RE.fullmatch(p.name)]
    return sorted(names, key=lambda n: int(n[1:]))


def next_version(index_dir: Path) -> str:
    """One past the highest number ever seen here (published or partial)."""
    root = versions_root(index_dir)
    numbers = [0]
    if root.is_dir():
        for p in root.iterdir():
            m = _VERSION_RE.match(p.name.removesuffix(PARTIAL_SUFFIX))
            if m:
                numbers.append(int(m.group(1)))
    return f"v{max(numbers) + 1:04d}"


def clean_partials(index_dir: Path) -> list[str]:
    """Remove ``*.partial`` directories left by crashed builds (call with the lock held)."""
    root = versions_root(index_dir)
    removed = []
    if root.is_dir():
        for p in sorted(root.iterdir()):
            if p.name.endswith(PARTIAL_SUFFIX) and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p.name)
        for p in sorted(index_dir.glob(f"{CURRENT_FILE}.tmp-*")):
            p.unlink(missing_ok=True)
    return removed


def staging_path(index_dir: Path, version: str) -> Path:
    path = versions_root(index_dir) / (version + PARTIAL_SUFFIX)
    path.mkdir(parents=True, exist_ok=False)
    return path


def finalize(staging: Path) -> Path:
    """Rename a complete staging directory to its version name (atomic on one filesystem)."""
    for f in staging.iterdir():
        with f.open("rb") as fh:
            os.fsync(fh.fileno())
    final = staging.with_name(staging.name.removesuffix(PARTIAL_SUFFIX))
    os.replace(staging, final)
    _fsync_dir(final.parent)
    return final


def remove_version(index_dir: Path, version: str) -> None:
    if version == current_version(index_dir):
        raise ValueError(f"{version} is live (CURRENT); activate another version first")
    shutil.rmtree(version_path(index_dir, version))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
