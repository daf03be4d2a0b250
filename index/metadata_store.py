"""``metadata.sqlite``: one row per indexed sequence, keyed by its FAISS row.

Tables: ``sequences`` (row = FAISS id, sequence id, fps, source, path of the ``.npy``,
description, attributes JSON, the full metadata record JSON) and ``attrs`` (row, key, value)
with an index on (key, value) so filters on any attribute group, ``source`` or ``fps`` are
index lookups rather than scans.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from gaitsearch.index import versions
from gaitsearch.model.gallery import SequenceRecord

ALWAYS_FILTER_KEYS = frozenset({"view", "source", "fps"})
_SCHEMA = """
CREATE TABLE sequences (
    row INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    fps REAL NOT NULL,
    source TEXT NOT NULL,
    path TEXT NOT NULL,
    description TEXT,
    attributes TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE attrs (row INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL);
CREATE TABLE info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def filter_value(key: str, value: Any) -> str:
    """Canonical string of a filterable value (``25.0`` and ``"25"`` are the same fps)."""
    if key == "fps" or isinstance(value, float):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return str(value)
        return str(int(number)) if number.is_integer() else repr(number)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# Below every SQLite build's bound-variable limit (999 before 3.32, 32766 since).
MAX_BOUND_VARIABLES = 900


def _chunks(values: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(values), MAX_BOUND_VARIABLES):
        yield values[start : start + MAX_BOUND_VARIABLES]


def _attr_rows(row: int, record: SequenceRecord) -> list[tuple[int, str, str]]:
    out = [(row, "source", record.source), (row, "fps", filter_value("fps", record.fps))]
    for key, value in record.attributes.items():
        if key in ("source", "fps"):
            continue
        if type(value) is str:  # most values: filter_value would return it as it is
            out.append((row, key, value))
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for v in values:
            # Categorical values only: measured floats (speed, height) are not filter keys.
            if isinstance(v, str | bool):
                out.append((row, key, filter_value(key, v)))
    return out


def _dumps(value: Any) -> str:
    """Sorted-key JSON text (orjson: a tenth of the json module's time, which was a tenth of
    a build's CPU at a million walks); the json module for what orjson refuses."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)


class MetadataWriter:
    """Append rows during a build; ``close()`` creates the filter index and commits."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with self._writing():
            self._db = sqlite3.connect(self.path)
            self._db.executescript(
                "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA temp_store=MEMORY;"
            )
            self._db.executescript(_SCHEMA)
        self._seq: list[tuple[Any, ...]] = []
        self._attrs: list[tuple[int, str, str]] = []
        self.count = 0

    def add(self, row: int, record: SequenceRecord, npy_path: str) -> None:
        dumped = record.model_dump(exclude_none=True)
        self._seq.append(
            (
                row,
                record.id,
                float(record.fps),
                record.source,
                npy_path,
                record.description,
                _dumps(record.attributes),
                _dumps(dumped),
            )
        )
        self._attrs.extend(_attr_rows(row, record))
        self.count += 1
        if len(self._seq) >= 4096:
            self._flush()

    def add_many(self, rows: Iterable[tuple[int, SequenceRecord, str]]) -> None:
        for row, record, npy_path in rows:
            self.add(row, record, npy_path)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """A full disk (or any failed write) is an ``IndexWriteError`` naming this file; the
        connection is closed so the caller can remove the partial version."""
        try:
            with versions.writing(self.path):
                yield
        except versions.IndexWriteError:
            db = getattr(self, "_db", None)
            if db is not None:
                db.close()
            raise

    def _flush(self) -> None:
        with self._writing():
            self._db.executemany("INSERT INTO sequences VALUES (?,?,?,?,?,?,?,?)", self._seq)
            self._db.executemany("INSERT INTO attrs VALUES (?,?,?)", self._attrs)
        self._seq.clear()
        self._attrs.clear()

    def close(self, info: Mapping[str, str] | None = None) -> None:
        self._flush()
        with self._writing():
            self._db.execute("CREATE INDEX attrs_key_value ON attrs(key, value, row)")
            for key, value in (info or {}).items():
                self._db.execute("INSERT INTO info VALUES (?, ?)", (key, value))
            self._db.commit()
        self._db.close()


class MetadataStore:
    """Read side, shared by threads (one connection behind a lock; queries are short)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(
            f"file:{self.path}?mode=ro&immutable=1", uri=True, check_same_thread=False
        )
        self._lock = threading.Lock()
        with self._lock:
            self.count = int(self._db.execute("SELECT COUNT(*) FROM sequences").fetchone()[0])
            keys = {k for (k,) in self._db.execute("SELECT DISTINCT key FROM attrs")}
        self.filter_keys = frozenset(keys | ALWAYS_FILTER_KEYS)

    def check(self) -> None:
        """Raise sqlite3.DatabaseError if the file is damaged."""
        with self._lock:
            result = self._db.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise sqlite3.DatabaseError(result)

    def rows_to_metadata(self, rows: Iterable[int]) -> dict[int, dict[str, Any]]:
        rows = [int(r) for r in rows]
        found = []
        for chunk in _chunks(rows):
            marks = ",".join("?" * len(chunk))
            with self._lock:
                found += self._db.execute(
                    "SELECT row, id, fps, source, description, attributes FROM sequences "
                    f"WHERE row IN ({marks})",
                    chunk,
                ).fetchall()
        return {
            r: {
                "id": sid,
                "fps": fps,
                "source": source,
                "attributes": json.loads(attrs),
                "description": desc,
            }
            for r, sid, fps, source, desc, attrs in found
        }

    def get(self, seq_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._db.execute(
                "SELECT row, id, fps, source, description, attributes, path FROM sequences "
                "WHERE id = ?",
                (seq_id,),
            ).fetchone()
        if found is None:
            return None
        row, sid, fps, source, desc, attrs, path = found
        return {
            "id": sid,
            "fps": fps,
            "source": source,
            "attributes": json.loads(attrs),
            "description": desc,
            "path": path,
            "row": row,
        }

    def allowed_rows(self, filters: Mapping[str, str | list[str]]) -> np.ndarray:
        """Rows matching every key (any of the listed values per key), sorted int64."""
        unknown = sorted(set(filters) - self.filter_keys)
        if unknown:
            raise ValueError(
                f"unknown filter key {unknown[0]!r}; this index accepts {sorted(self.filter_keys)}"
            )
        result: set[int] | None = None
        for key, wanted in filters.items():
            values = [wanted] if isinstance(wanted, str | int | float) else list(wanted)
            values = [filter_value(key, v) for v in values]
            if not values:
                return np.zeros(0, dtype=np.int64)
            rows: set[int] = set()
            for chunk in _chunks(list(dict.fromkeys(values))):
                marks = ",".join("?" * len(chunk))
                with self._lock:
                    rows.update(
                        r
                        for (r,) in self._db.execute(
                            f"SELECT row FROM attrs WHERE key = ? AND value IN ({marks})",
                            [key, *chunk],
                        )
                    )
            result = rows if result is None else result & rows
            if not result:
                return np.zeros(0, dtype=np.int64)
        return np.array(sorted(result or ()), dtype=np.int64)

    def all_rows(self) -> np.ndarray:
        with self._lock:
            found = self._db.execute("SELECT row FROM sequences ORDER BY row").fetchall()
        return np.array([r for (r,) in found], dtype=np.int64)

    def iter_records(self) -> Iterator[tuple[int, SequenceRecord, str]]:
        """Every (row, record, npy path), by row; for add/remove."""
        with self._lock:
            found = self._db.execute(
                "SELECT row, record, path FROM sequences ORDER BY row"
            ).fetchall()
        for row, record, path in found:
            yield row, SequenceRecord.model_validate(json.loads(record)), path

    def sample_descriptions(self, limit: int, seed: int = 0) -> list[str]:
        with self._lock:
            found = self._db.execute(
                "SELECT description FROM sequences WHERE description IS NOT NULL"
            ).fetchall()
        texts = sorted({d for (d,) in found})
        if len(texts) > limit:
            rng = np.random.default_rng(seed)
            texts = [texts[i] for i in sorted(rng.choice(len(texts), limit, replace=False))]
        return texts

    def close(self) -> None:
        with self._lock:
            self._db.close()
