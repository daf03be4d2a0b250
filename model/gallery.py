"""Gallery directories: ``sequences/<id>.npy`` + ``metadata.jsonl`` (see DESIGN.md).

Reading is streaming and never modifies the input directory. Problems are reported one
line per file; ``strict=True`` refuses the whole gallery on the first problem, otherwise bad
entries are skipped and counted.
"""

from __future__ import annotations

import io
import json
import logging
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from gaitsearch.model.skeleton import SkeletonError, validate_sequence
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

log = logging.getLogger(__name__)

# Use with ``fullmatch``: ``$`` alone would let a trailing newline through.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
# No real walk is longer (an hour at 60 fps); a header claiming more is damaged or hostile.
MAX_FRAMES = 216_000
METADATA_FILE = "metadata.jsonl"
SEQUENCES_DIR = "sequences"


class GalleryError(ValueError):
    """A gallery that cannot be used; the message names the file and the problem."""


class SequenceRecord(BaseModel):
    """One line of ``metadata.jsonl``."""

    model_config = ConfigDict(extra="allow")

    id: str
    fps: float = Field(default=25.0, gt=0, le=1000)
    source: str = "unknown"
    attributes: dict[str, Any] = Field(default_factory=dict)
    description: str | None = None
    descriptions: list[str] | None = None

    @field_validator("id")
    @classmethod
    def _safe_id(cls, value: str) -> str:
        if not ID_PATTERN.fullmatch(value) or ".." in value:
            raise ValueError(
                f"id {value!r} must be 1-128 characters of letters, digits, '_', '-', '.'"
            )
        return value

    def all_descriptions(self) -> list[str]:
        """Every description this record carries, the single one first."""
        out: list[str] = []
        if self.description:
            out.append(self.description)
        for text in self.descriptions or []:
            if text and text not in out:
                out.append(text)
        return out


@dataclass
class GalleryReport:
    """What a scan or a job found: counts and one line per problem."""

    ok: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return len(self.problems)


def sequence_path(root: Path, seq_id: str) -> Path:
    return Path(root) / SEQUENCES_DIR / f"{seq_id}.npy"


def iter_metadata(
    root: Path | str, report: GalleryReport | None = None, strict: bool = False
) -> Iterator[SequenceRecord]:
    """Stream the valid, unique records of ``metadata.jsonl``, one line at a time.

    Bad or duplicate lines are reported (or refused if strict).
    """
    root = Path(root)
    meta_path = root / METADATA_FILE
    if not root.is_dir():
        raise GalleryError(f"{root}: not a directory")
    if not meta_path.is_file():
        raise GalleryError(f"{meta_path}: missing (a gallery needs {METADATA_FILE})")
    report = report if report is not None else GalleryReport()
    seen: set[str] = set()
    with meta_path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            where = f"{meta_path}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                report_problem(report, f"{where}: not UTF-8 (byte {exc.start + 1})", strict)
                continue
            if not line.strip():
                continue
            try:
                record = SequenceRecord.model_validate(json.loads(line))
            except json.JSONDecodeError as exc:
                report_problem(report, f"{where}: not valid JSON ({exc.msg})", strict)
                continue
            except RecursionError:
                report_problem(report, f"{where}: JSON nested too deeply", strict)
                continue
            except ValidationError as exc:
                first = exc.errors()[0]
                loc = ".".join(str(p) for p in first["loc"]) or "line"
                report_problem(report, f"{where}: {loc}: {first['msg']}", strict)
                continue
            if record.id in seen:
                report_problem(report, f"{where}: duplicate id {record.id!r}", strict)
                continue
            seen.add(record.id)
            yield record


def read_metadata(
    root: Path | str, report: GalleryReport | None = None, strict: bool = False
) -> list[SequenceRecord]:
    """Parse ``metadata.jsonl``; bad or duplicate lines are reported (or refused if strict)."""
    return list(iter_metadata(root, report, strict))


def report_problem(report: GalleryReport, message: str, strict: bool) -> None:
    """Record one problem line, or raise it as a :class:`GalleryError` when strict.

    Callers print ``report.problems`` themselves; the log gets it at debug level only.
    """
    if strict:
        raise GalleryError(message)
    report.problems.append(message)
    log.debug(message)


def load_sequence(path: Path | str) -> np.ndarray:
    """Load and validate one ``.npy`` sequence (no pickles).

    Only regular files are opened (a FIFO or device would block the reader forever) and the
    header is checked before anything is allocated: its dtype must be real numbers, its
    shape ``(T, 18|17, 3)`` with at most :data:`MAX_FRAMES` frames, and the file must hold
    exactly that many bytes (an emptied or truncated file is refused, not half-read)."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise SkeletonError(f"{path}: missing sequence file") from exc
    except OSError as exc:
        raise SkeletonError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if not stat.S_ISREG(info.st_mode):
        raise SkeletonError(f"{path}: not a regular file (a pipe, device or directory)")
    try:
        with path.open("rb") as fh:
            shape, dtype = _npy_header(fh, info.st_size, str(path))
            arr = np.fromfile(fh, dtype=dtype, count=int(np.prod(shape))).reshape(shape)
    except SkeletonError:
        raise
    except (OSError, ValueError, EOFError, MemoryError) as exc:
        raise SkeletonError(f"{path}: not a readable .npy array ({exc})") from exc
    return validate_sequence(arr, str(path))


_NPY_MAGIC = b"\x93NUMPY"
MAX_HEADER_BYTES = 10_000


@lru_cache(maxsize=1024)  # at most ~10 MB of distinct headers
def _parse_npy_header(raw: bytes) -> tuple[tuple[int, ...], bool, np.dtype]:
    """NumPy's own (safe, literal-only) parse of a complete ``.npy`` preamble; a gallery's
    files share a few dozen distinct headers, so each is parsed once."""
    from numpy.lib import format as npy

    fh = io.BytesIO(raw)
    major, _ = npy.read_magic(fh)
    read = npy.read_array_header_1_0 if major == 1 else npy.read_array_header_2_0
    shape, fortran, dtype = read(fh, max_header_size=MAX_HEADER_BYTES)
    return tuple(int(d) for d in shape), bool(fortran), dtype


def _npy_header(fh: Any, size: int, source: str) -> tuple[tuple[int, ...], np.dtype]:
    if size == 0:
        raise SkeletonError(f"{source}: empty file (not a .npy array)")
    try:
        prefix = fh.read(8)  # magic and version
        if len(prefix) < 8 or prefix[:6] != _NPY_MAGIC:
            raise ValueError("the magic string is not that of a .npy file")
        length = fh.read(2 if prefix[6] == 1 else 4)
        header_len = int.from_bytes(length, "little")
        if header_len > MAX_HEADER_BYTES:
            raise ValueError(f"header of {header_len} bytes (at most {MAX_HEADER_BYTES})")
        header = fh.read(header_len)
        if len(header) < header_len:
            raise EOFError("the file ends inside its header")
        shape, fortran, dtype = _parse_npy_header(prefix + length + header)
    except (ValueError, EOFError, OSError, SyntaxError) as exc:
        raise SkeletonError(f"{source}: not a readable .npy array ({exc})") from exc
    if dtype.hasobject or dtype.kind not in "biuf":
        raise SkeletonError(f"{source}: expected real numbers, the file holds dtype {dtype}")
    if len(shape) != 3 or shape[1:] not in ((18, 3), (17, 3)) or fortran:
        raise SkeletonError(
            f"{source}: wrong shape {tuple(shape)}, expected (T, 18, 3) (OpenPose-18 x, y, "
            "confidence), C order"
        )
    if shape[0] > MAX_FRAMES:
        raise SkeletonError(f"{source}: {shape[0]} frames claimed (at most {MAX_FRAMES})")
    want = int(np.prod(shape)) * dtype.itemsize
    if size - fh.tell() != want:
        raise SkeletonError(
            f"{source}: holds {size - fh.tell()} data bytes, its header promises {want} "
            "(truncated or damaged)"
        )
    return tuple(shape), dtype


def scan_gallery(
    root: Path | str, strict: bool = False, report: GalleryReport | None = None
) -> list[SequenceRecord]:
    """Records whose sequence file exists; orphans on either side are reported."""
    root = Path(root)
    report = report if report is not None else GalleryReport()
    records = read_metadata(root, report, strict)
    seq_dir = root / SEQUENCES_DIR
    on_disk = {p.stem for p in seq_dir.glob("*.npy")} if seq_dir.is_dir() else set()
    kept = []
    for record in records:
        if record.id in on_disk:
            kept.append(record)
        else:
            report_problem(
                report,
                f"{sequence_path(root, record.id)}: metadata line for "
                f"{record.id!r} but no sequence file",
                strict,
            )
    known = {r.id for r in records}
    for stem in sorted(on_disk - known):
        report_problem(
            report,
            f"{sequence_path(root, stem)}: sequence file with no metadata line (unknown id)",
            strict,
        )
    return kept


def iter_gallery(
    root: Path | str,
    strict: bool = False,
    report: GalleryReport | None = None,
    records: list[SequenceRecord] | None = None,
) -> Iterator[tuple[SequenceRecord, np.ndarray]]:
    """Stream ``(record, array)`` pairs, validating each file as it is read.

    Bad files are reported in ``report`` and skipped, or raise :class:`GalleryError` if strict.
    """
    root = Path(root)
    report = report if report is not None else GalleryReport()
    if records is None:
        records = scan_gallery(root, strict, report)
    for record in records:
        try:
            arr = load_sequence(sequence_path(root, record.id))
        except SkeletonError as exc:
            report_problem(report, str(exc), strict)
            continue
        report.ok += 1
        yield record, arr


class GalleryWriter:
    """Write a gallery directory; refuses to overwrite an existing, non-empty one."""

    def __init__(self, root: Path | str, overwrite: bool = False) -> None:
        self.root = Path(root)
        meta = self.root / METADATA_FILE
        if meta.exists() and not overwrite:
            raise GalleryError(f"{meta}: already exists (choose an empty --out directory)")
        (self.root / SEQUENCES_DIR).mkdir(parents=True, exist_ok=True)
        self._fh = meta.open("w", encoding="utf-8")
        self._ids: set[str] = set()

    def add(self, record: SequenceRecord, array: np.ndarray) -> None:
        if record.id in self._ids:
            raise GalleryError(f"duplicate id {record.id!r}")
        arr = validate_sequence(array, record.id)
        np.save(sequence_path(self.root, record.id), arr, allow_pickle=False)
        self._fh.write(record_to_json(record) + "\n")
        self._ids.add(record.id)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> GalleryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def record_to_json(record: SequenceRecord) -> str:
    """Stable one-line JSON for a record (sorted keys, no None fields): same input, same bytes."""
    return json.dumps(record.model_dump(exclude_none=True), sort_keys=True, ensure_ascii=False)


def write_metadata(
    root: Path | str,
    records: list[SequenceRecord],
    on_progress: Callable[[int], None] | None = None,
) -> None:
    """Rewrite ``metadata.jsonl`` atomically (write to a temp file, then rename)."""
    root = Path(root)
    tmp = root / (METADATA_FILE + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for i, record in enumerate(records):
            fh.write(record_to_json(record) + "\n")
            if on_progress:
                on_progress(i + 1)
    tmp.replace(root / METADATA_FILE)
