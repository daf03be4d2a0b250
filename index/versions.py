"""Versioned index directories: ``versions/<v>/`` beside each other, ``CURRENT`` names the live one.

A build writes into ``versions/<v>.partial/`` and renames it to ``versions/<v>/`` only when
every file is written and fsynced; ``CURRENT`` is then replaced atomically (temp file +
``os.replace``). An exclusive ``flock`` on ``.lock`` is held by whoever builds, publishes,
activates or collects garbage, so two writers never publish at once; the kernel drops it when
a process dies, so a ``kill -9`` never leaves a stale lock. Leftover ``*.partial`` directories
can only come from crashed builds and are removed by the next writer.

A write that fails (disk full, quota, file-size limit, I/O error) is an
:class:`IndexWriteError`: one line naming the file and the OS error; the caller removes its
partial version. Removal never goes through a symbolic link or onto another filesystem:
:func:`remove_tree` skips such a directory and says why.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

VERSIONS_DIR = "versions"
CURRENT_FILE = "CURRENT"
LOCK_FILE = ".lock"
# The root of a shard list (gaitsearch.index.shards): served as an index, never written as one.
SHARD_LIST_FILE = "shards.json"
PARTIAL_SUFFIX = ".partial"
_VERSION_RE = re.compile(r"^v(\d{4,})$")
log = logging.getLogger(__name__)


class IndexLockedError(RuntimeError):
    """Another process holds the index directory's write lock."""


class CurrentFileError(ValueError):
    """``CURRENT`` exists but cannot be read as a version name; the message names it."""


class IndexWriteError(RuntimeError):
    """Writing a file of a new version failed (disk full, quota, I/O error); nothing of it
    is published. The message is one line: ``<file>: <reason>; <note>``."""

    def __init__(self, path: Path | str, reason: str, note: str = "nothing was published") -> None:
        self.path, self.reason, self.note = Path(path), reason, note
        super().__init__(f"{path}: {reason}; {note}")

    def noting(self, note: str) -> IndexWriteError:
        return IndexWriteError(self.path, self.reason, note)


_ERRNO_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
}


def _nearly_full(path: Path) -> bool:
    """Whether the filesystem holding ``path`` (or its nearest existing parent) is full."""
    for parent in (path, *path.parents):
        try:
            usage = shutil.disk_usage(parent)
        except OSError:
            continue
        return usage.free < 1 << 20
    return False


def write_failure(path: Path | str, exc: BaseException) -> IndexWriteError:
    """An :class:`IndexWriteError` for ``exc`` (an ``OSError`` or a SQLite error) raised
    while writing ``path``: the OS error in words, "no space left on device" when it is that."""
    path = Path(path)
    if isinstance(exc, OSError):
        target = Path(exc.filename) if isinstance(exc.filename, str) else path
        reason = _ERRNO_REASONS.get(exc.errno or 0) or (exc.strerror or str(exc)).lower()
        return IndexWriteError(target, reason)
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name == "SQLITE_FULL":
        return IndexWriteError(path, f"no space left on device ({exc})")
    if _nearly_full(path):
        return IndexWriteError(path, f"no space left on device ({exc})")
    return IndexWriteError(path, f"write failed ({exc})")


# SQLite result codes that mean the file could not be written (not a constraint or a bug).
_SQLITE_WRITE_FAILURES = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_READONLY")


def is_write_failure(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        name = getattr(exc, "sqlite_errorname", "") or ""
        return name.startswith(_SQLITE_WRITE_FAILURES)
    return False


@contextmanager
def writing(path: Path | str) -> Iterator[None]:
    """Turn an ``OSError`` (or SQLite write failure) raised inside into an
    :class:`IndexWriteError` naming ``path``."""
    try:
        yield
    except IndexWriteError:
        raise
    except (OSError, sqlite3.OperationalError) as exc:
        if not is_write_failure(exc):
            raise
        raise write_failure(path, exc) from exc


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
    if (index_dir / SHARD_LIST_FILE).is_file():
        raise ValueError(
            f"{index_dir}: is a shard list ({SHARD_LIST_FILE}); build, add to or remove from "
            "one of its shards' index directories instead"
        )
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
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:  # a full disk: the lock holds without the pid (shown as "?")
            pass
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
    with writing(index_dir / CURRENT_FILE):
        try:
            with tmp.open("w", encoding="utf-8") as fh:
                fh.write(version + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, index_dir / CURRENT_FILE)
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(index_dir)


def list_versions(index_dir: Path) -> list[str]:
    """Published versions, oldest first."""
    root = versions_root(index_dir)
    if not root.is_dir():
        return []
    names = [p.name for p in root.iterdir() if p.is_dir() and _VERSION_RE.fullmatch(p.name)]
    return sorted(names, key=lambda n: int(n[1:]))


def unremovable(path: Path, within: Path) -> str | None:
    """Why ``path`` must not be deleted by a cleanup of ``within`` (None when it may be):
    it is a symbolic link, the ``versions`` directory above it is one, or it holds one (a
    link is never followed to delete what it points at), or it holds another filesystem."""
    path, within = Path(path), Path(within)
    for link in (path, *[p for p in path.parents if within in p.parents]):
        if link.is_symlink():
            return f"{link} is a symbolic link (to {os.readlink(link)}); not followed"
    try:
        device = os.stat(within).st_dev  # the index directory itself may be a link
        if os.lstat(path).st_dev != device:
            return f"{path} is on another filesystem than {within}"
    except OSError as exc:
        return f"{exc.filename or path}: cannot be read ({exc.strerror or exc})"
    for top, dirs, files in os.walk(path, followlinks=False):
        for name in (*dirs, *files):
            entry = Path(top) / name
            try:
                st = os.lstat(entry)
            except OSError:
                continue
            if entry.is_symlink():
                return (
                    f"{path} holds a symbolic link {entry.relative_to(path)} -> "
                    f"{os.readlink(entry)}; not followed"
                )
            if st.st_dev != device:
                return f"{path} holds {entry.relative_to(path)} on another filesystem"
    return None


def remove_tree(path: Path, within: Path) -> str | None:
    """Delete directory ``path`` (inside ``within``) unless :func:`unremovable` says why
    not; returns that reason (the directory is then left as it is) or None when deleted.
    The deletion itself never follows links either (``shutil.rmtree`` works on file
    descriptors where the platform allows, as Linux does)."""
    reason = unremovable(path, within)
    if reason is not None:
        return reason
    shutil.rmtree(path)
    return None


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


def sweep_partials(index_dir: Path) -> tuple[list[str], list[str]]:
    """Remove ``*.partial`` directories left by crashed builds (call with the lock held);
    returns (removed names, one line per partial directory left alone and why)."""
    index_dir = Path(index_dir)
    root = versions_root(index_dir)
    removed: list[str] = []
    skipped: list[str] = []
    if root.is_dir():
        for p in sorted(root.iterdir()):
            if p.name.endswith(PARTIAL_SUFFIX) and (p.is_dir() or p.is_symlink()):
                reason = remove_tree(p, index_dir)
                if reason is None:
                    removed.append(p.name)
                else:
                    skipped.append(f"{p.name}: {reason}")
        for p in sorted(index_dir.glob(f"{CURRENT_FILE}.tmp-*")):
            if not p.is_dir():
                p.unlink(missing_ok=True)
    return removed, skipped


def clean_partials(index_dir: Path) -> list[str]:
    """Remove ``*.partial`` directories left by crashed builds (call with the lock held);
    a partial directory that is or holds a symbolic link is left alone (logged)."""
    removed, skipped = sweep_partials(index_dir)
    for line in skipped:
        log.warning("left alone: %s", line)
    return removed


def staging_path(index_dir: Path, version: str) -> Path:
    path = versions_root(index_dir) / (version + PARTIAL_SUFFIX)
    path.mkdir(parents=True, exist_ok=False)
    return path


def finalize(staging: Path) -> Path:
    """Rename a complete staging directory to its version name (atomic on one filesystem)."""
    for f in staging.iterdir():
        with writing(f), f.open("rb") as fh:
            os.fsync(fh.fileno())
    final = staging.with_name(staging.name.removesuffix(PARTIAL_SUFFIX))
    with writing(final):
        os.replace(staging, final)
        _fsync_dir(final.parent)
    return final


def remove_version(index_dir: Path, version: str) -> str | None:
    """Delete a published version that is not live; returns why it was left alone (a
    symbolic link, see :func:`remove_tree`) or None when deleted."""
    if version == current_version(index_dir):
        raise ValueError(f"{version} is live (CURRENT); activate another version first")
    return remove_tree(version_path(index_dir, version), Path(index_dir))


def discard(index_dir: Path, version: str) -> None:
    """Remove what a failed build of ``version`` left (its partial directory, or the renamed
    directory when ``CURRENT`` does not name it), so no half-published version stays."""
    staging = versions_root(index_dir) / (version + PARTIAL_SUFFIX)
    if staging.is_dir() and not staging.is_symlink():
        shutil.rmtree(staging, ignore_errors=True)
    final = versions_root(index_dir) / version
    if final.is_dir() and not final.is_symlink():
        try:
            live = current_version(index_dir)
        except CurrentFileError:
            return  # cannot tell whether it is live: keep it
        if live != version:
            shutil.rmtree(final, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
