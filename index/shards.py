"""Sharded serving: one search over several ordinary indexes (a gallery past one machine).

A gallery of tens of millions of walks is split into parts (:func:`split_gallery`: by a hash
of each walk's id, so the parts are even and a walk always lands in the same part), every part
is built into its own index directory like any gallery (``gaitsearch index build``; on a
cluster with ``--engine ray``), and a *shard list* (``shards.json`` in a root directory,
written by :func:`write_shard_list`) names those index directories. The service and the CLI
open the root like an index: a query goes to every shard and their top-k lists merge by
score, which over exact (flat) shards is the unsharded answer exactly.

Each shard keeps its own versions, ``CURRENT``, add/remove and checks; the root's version is
the shards' live versions joined with ``+``, so the service's hot reload notices a new version
of any shard. Walk ids must be unique across shards (checked when the list is written).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
from gaitsearch.index.loaded_index import Hit, IndexLoadError, LoadedIndex, load_index
from gaitsearch.index.versions import SHARD_LIST_FILE, CurrentFileError, current_version

SHARDS_FILE = SHARD_LIST_FILE
SHARDS_FORMAT = 1
MAX_SHARDS = 256


class ShardError(ValueError):
    """A shard list or a split that cannot be done; the message names the file and why."""


def shard_of(seq_id: str, parts: int) -> int:
    """The part (0 .. parts-1) walk ``seq_id`` belongs to: a stable hash, not Python's."""
    digest = hashlib.blake2b(seq_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % parts


def split_gallery(src: Path | str, parts: int, dest: Path | str) -> list[tuple[Path, int]]:
    """Split gallery ``src`` into ``parts`` galleries ``dest/part-NN`` (metadata lines copied,
    sequence files symlinked, nothing duplicated); returns each part and its walk count."""
    src, dest = Path(src).resolve(), Path(dest)
    if not 2 <= parts <= MAX_SHARDS:
        raise ShardError(f"parts must be between 2 and {MAX_SHARDS}, got {parts}")
    meta = src / "metadata.jsonl"
    if not meta.is_file():
        raise ShardError(f"{meta}: missing (a gallery needs it)")
    if dest.exists() and any(dest.iterdir()):
        raise ShardError(f"{dest}: not empty (the parts are written into a new directory)")
    dirs = [dest / f"part-{i:02d}" for i in range(parts)]
    for d in dirs:
        (d / "sequences").mkdir(parents=True)
    counts = [0] * parts
    outs = [(d / "metadata.jsonl").open("w", encoding="utf-8") for d in dirs]
    try:
        with meta.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    seq_id = str(json.loads(line)["id"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise ShardError(f"{meta}: line {n} has no readable id ({exc})") from exc
                part = shard_of(seq_id, parts)
                outs[part].write(line if line.endswith("\n") else line + "\n")
                counts[part] += 1
                target = src / "sequences" / f"{seq_id}.npy"
                if target.is_file():
                    (dirs[part] / "sequences" / f"{seq_id}.npy").symlink_to(target)
    finally:
        for out in outs:
            out.close()
    return list(zip(dirs, counts, strict=True))


def is_sharded(index_dir: Path | str) -> bool:
    return (Path(index_dir) / SHARDS_FILE).is_file()


def read_shard_list(root: Path | str) -> list[Path]:
    """The index directories ``root/shards.json`` names (relative paths are under root)."""
    root = Path(root)
    path = root / SHARDS_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise IndexLoadError(f"{path}: not a readable shard list ({exc})") from exc
    shards = doc.get("shards") if isinstance(doc, dict) else None
    if (
        not isinstance(shards, list)
        or not shards
        or len(shards) > MAX_SHARDS
        or not all(isinstance(s, str) and s for s in shards)
    ):
        raise IndexLoadError(
            f'{path}: expected {{"shards": ["<index dir>", ...]}} with 1 to {MAX_SHARDS} entries'
        )
    return [(root / s) if not Path(s).is_absolute() else Path(s) for s in shards]


def write_shard_list(root: Path | str, index_dirs: Sequence[Path | str]) -> tuple[Path, int]:
    """Check the shards fit together (each published, one checkpoint, one text encoder, one
    dimension, no walk id in two shards) and write ``root/shards.json`` atomically; returns
    the file and the walks the shards hold."""
    root = Path(root)
    dirs = [Path(d) for d in index_dirs]
    if not dirs:
        raise ShardError("name at least one shard index directory")
    if len(dirs) > MAX_SHARDS:
        raise ShardError(f"at most {MAX_SHARDS} shards, got {len(dirs)}")
    if len({d.resolve() for d in dirs}) != len(dirs):
        raise ShardError("a shard index directory is named twice")
    loaded = []
    try:
        for d in dirs:
            if is_sharded(d):
                raise ShardError(f"{d}: is itself a shard list (shards are plain indexes)")
            loaded.append(load_index(d))
        _check_together(loaded)
        count = sum(int(index.count) for index in loaded)
        seen: dict[str, Path] = {}
        for d, index in zip(dirs, loaded, strict=True):
            for _, record, _ in index.records():
                other = seen.setdefault(record.id, d)
                if other != d:
                    raise ShardError(f"walk id {record.id!r} is in two shards: {other} and {d}")
    finally:
        for index in loaded:
            index.close()
    root.mkdir(parents=True, exist_ok=True)
    names = [os.path.relpath(d.resolve(), root.resolve()) for d in dirs]
    path = root / SHARDS_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"format": SHARDS_FORMAT, "shards": names}, indent=2) + "\n")
    os.replace(tmp, path)
    return path, count


def _check_together(shards: Sequence[LoadedIndex]) -> None:
    first = shards[0]
    for s in shards[1:]:
        for what, a, b in (
            ("dimension", first.dim, s.dim),
            ("checkpoint", first.manifest.checkpoint_fingerprint,
             s.manifest.checkpoint_fingerprint),
            ("text encoder", first.manifest.text_encoder.fingerprint,
             s.manifest.text_encoder.fingerprint),
        ):  # fmt: skip
            if a != b:
                raise IndexLoadError(
                    f"{s.path}: its {what} ({b}) differs from {first.path}'s ({a}); "
                    "every shard must be built by the same checkpoint"
                )


def sharded_version(root: Path | str) -> str | None:
    """The shards' live versions joined with ``+`` (None while a shard has published none)."""
    names = []
    for d in read_shard_list(root):
        try:
            v = current_version(d)
        except CurrentFileError as exc:
            raise IndexLoadError(str(exc)) from exc
        if v is None:
            return None
        names.append(v)
    return "+".join(names)


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The threads shard searches run on (created once, one per core)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 1,
                                       thread_name_prefix="shard-search")  # fmt: skip
        return _POOL


class ShardedIndex:
    """Several loaded indexes searched as one; the surface the service and CLI use."""

    def __init__(self, root: Path, shards: list[LoadedIndex]) -> None:
        _check_together(shards)
        self.path = root
        self.shards = shards
        self.version = "+".join(s.version for s in shards)
        self.count = sum(int(s.count) for s in shards)
        self.dim = shards[0].dim
        kinds = sorted({s.kind for s in shards})
        self.kind = kinds[0] if len(kinds) == 1 else "+".join(kinds)
        self.filter_keys: frozenset[str] = frozenset().union(*(s.filter_keys for s in shards))
        #: search the shards in parallel threads (one per core, shared by every sharded index)
        self.parallel = (os.cpu_count() or 1) > 1
        self.manifest = shards[0].manifest.model_copy(
            update={
                "version": self.version,
                "count": self.count,
                "kind": self.kind,
                "data_sources": [src for s in shards for src in s.manifest.data_sources],
                "skipped": sum(s.manifest.skipped for s in shards),
                "files": {},
            }
        )

    def search(
        self,
        vectors: np.ndarray,
        k: int,
        filters: dict[str, str | list[str]] | None = None,
    ) -> list[list[Hit]]:
        """Every shard's top ``k``, merged by score. A filter key no shard knows is a
        ValueError; a shard without the key has no walk that matches it."""
        if filters:
            unknown = set(filters) - self.filter_keys
            if unknown:
                raise ValueError(f"unknown filter keys: {', '.join(sorted(unknown))}")
        targets = [s for s in self.shards if not filters or set(filters) <= s.filter_keys]
        if self.parallel and len(targets) > 1 and self._heavy(vectors, filters, targets):
            # FAISS releases the GIL: the shards' scans overlap (4 shards of 54k walks, dense
            # queries: 8.7 -> 5.4 ms on 2 cores; benchmarks/shard_search.py).
            per_shard = list(_pool().map(lambda s: s.search(vectors, k, filters), targets))
        else:
            per_shard = [s.search(vectors, k, filters) for s in targets]
        n = len(np.atleast_2d(np.asarray(vectors)))
        if not per_shard:
            return [[] for _ in range(n)]
        return [
            heapq.nlargest(k, (h for lists in per_shard for h in lists[row]), key=lambda h: h.score)
            for row in range(n)
        ]

    @staticmethod
    def _heavy(vectors: np.ndarray, filters: Any, shards: list[LoadedIndex]) -> bool:
        """Whether some shard answers through FAISS. Column searches are a few hundred
        microseconds of mostly Python per shard; threads made them slower (1.7 -> 2.4 ms
        for 4 shards), so those stay one after the other."""
        if filters:
            return True
        q = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        return any(s.columns is None or not s.columns.takes(q).all() for s in shards)

    def _owner(self, seq_id: str) -> LoadedIndex | None:
        for s in self.shards:
            if s.get(seq_id) is not None:
                return s
        return None

    def get(self, seq_id: str) -> dict[str, Any] | None:
        for s in self.shards:
            found = s.get(seq_id)
            if found is not None:
                return found
        return None

    def load_keypoints(self, seq_id: str) -> np.ndarray | None:
        owner = self._owner(seq_id)
        return owner.load_keypoints(seq_id) if owner else None

    def vector(self, seq_id: str) -> np.ndarray | None:
        owner = self._owner(seq_id)
        return owner.vector(seq_id) if owner else None

    def sample_descriptions(self, limit: int) -> list[str]:
        out: list[str] = []
        for s in self.shards:
            out += s.sample_descriptions(max(limit - len(out), 0))
        return out[:limit]

    def check_compatible(self, checkpoint_fingerprint: str, text_encoder_fingerprint: str) -> None:
        for s in self.shards:
            s.check_compatible(checkpoint_fingerprint, text_encoder_fingerprint)

    def close(self) -> None:
        for s in self.shards:
            s.close()


def load_sharded(root: Path | str, version: str | None = None) -> ShardedIndex:
    """Load every shard ``root/shards.json`` names (at ``version``, a ``+``-joined list of
    the shards' versions, else each shard's ``CURRENT``)."""
    root = Path(root)
    dirs = read_shard_list(root)
    wanted: list[str | None] = [None] * len(dirs)
    if version is not None:
        parts = version.split("+")
        if len(parts) != len(dirs):
            raise IndexLoadError(
                f"{root}: version {version!r} names {len(parts)} shard versions, "
                f"the shard list has {len(dirs)} shards"
            )
        wanted = list(parts)
    loaded: list[LoadedIndex] = []
    try:
        for d, v in zip(dirs, wanted, strict=True):
            loaded.append(load_index(d, v))
        return ShardedIndex(root, loaded)
    except BaseException:
        for index in loaded:
            index.close()
        raise


#: what the query path searches: one index or a shard list
AnyIndex: TypeAlias = LoadedIndex | ShardedIndex


def open_index(index_dir: Path | str, version: str | None = None) -> AnyIndex:
    """An index directory or a shard list root, whichever ``index_dir`` is."""
    if is_sharded(index_dir):
        return load_sharded(index_dir, version)
    return load_index(index_dir, version)


def live_version(index_dir: Path | str) -> str | None:
    """What ``CURRENT`` names, or for a shard list root the shards' joined versions."""
    if is_sharded(index_dir):
        return sharded_version(index_dir)
    return current_version(Path(index_dir))
