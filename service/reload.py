"""Hot reload: load a new index version beside the live one, check it, swap atomically.

Requests take a *lease* on the version that is live when they start and keep it until they
finish, so a swap never pulls an index from under a running search; the old version is
closed when its last lease ends. A version that fails to load, fails its checksums, was built
with another checkpoint or text encoder, or cannot answer a warm-up search is refused and the
live one keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


class ReloadError(RuntimeError):
    """The new version was refused; the message says why. The old one keeps serving."""


class _Slot:
    """One loaded version and how many requests are using it."""

    def __init__(self, index: Any) -> None:
        self.index = index
        self.leases = 0
        self.retired = False

    def close_if_idle(self) -> None:
        if self.retired and self.leases == 0:
            try:
                self.index.close()
            except Exception:  # noqa: BLE001 - closing must never break serving
                log.exception("closing index %s failed", getattr(self.index, "version", "?"))


@dataclass
class ReloadOutcome:
    previous: str | None
    version: str
    changed: bool
    took_ms: float


Loader = Callable[[Path, str | None], Any]
Validator = Callable[[Any], None]


class IndexHolder:
    """Holds the live index; ``lease()`` for requests, ``reload()`` for admins and the watcher."""

    def __init__(
        self,
        index_dir: Path,
        loader: Loader,
        validate: Validator,
        current: Callable[[Path], str | None],
        on_swap: Callable[[Any], None] | None = None,
    ) -> None:
        self.index_dir = Path(index_dir)
        self._loader = loader
        self._validate = validate
        self._current = current
        self._on_swap = on_swap
        self._slot: _Slot | None = None
        self._lock = threading.Lock()  # guards _slot and lease counts
        self._reload_lock = threading.Lock()  # one reload at a time
        self.last_error: str | None = None

    @property
    def ready(self) -> bool:
        return self._slot is not None

    @property
    def version(self) -> str | None:
        slot = self._slot
        return slot.index.version if slot else None

    @contextmanager
    def lease(self) -> Iterator[Any]:
        with self._lock:
            slot = self._slot
            if slot is None:
                raise ReloadError("no index is loaded yet")
            slot.leases += 1
        try:
            yield slot.index
        finally:
            with self._lock:
                slot.leases -= 1
                slot.close_if_idle()

    def reload(self, version: str | None = None) -> ReloadOutcome:
        """Load ``version`` (default: what CURRENT names) and make it live if it checks out."""
        start = time.perf_counter()
        with self._reload_lock:
            previous = self.version
            try:
                target = version or self._current(self.index_dir)
            except Exception as exc:  # noqa: BLE001 - a damaged CURRENT refuses the reload
                self.last_error = str(exc)
                raise ReloadError(self.last_error) from exc
            if target is None:
                raise ReloadError(f"{self.index_dir / 'CURRENT'}: missing (no index published)")
            if target == previous:
                return ReloadOutcome(previous, target, False, _ms(start))
            try:
                new = self._loader(self.index_dir, target)
            except Exception as exc:  # noqa: BLE001 - any loader failure refuses the version
                self.last_error = f"version {target}: {exc}"
                raise ReloadError(self.last_error) from exc
            try:
                self._validate(new)
            except Exception as exc:  # noqa: BLE001
                _close_quietly(new)
                self.last_error = f"version {target}: {exc}"
                raise ReloadError(self.last_error) from exc
            with self._lock:
                old = self._slot
                self._slot = _Slot(new)
                if old is not None:
                    old.retired = True
                    old.close_if_idle()
            self.last_error = None
            if self._on_swap:
                self._on_swap(new)
            log.info("index version %s is live (was %s)", new.version, previous)
            return ReloadOutcome(previous, new.version, True, _ms(start))

    def close(self) -> None:
        with self._lock:
            if self._slot is not None:
                self._slot.retired = True
                self._slot.close_if_idle()
                self._slot = None


def warmup_check(dim: int) -> Validator:
    """A validator: the index's dimension matches the query encoder and a search answers."""

    def check(index: Any) -> None:
        if int(index.dim) != dim:
            raise ReloadError(f"index dimension {index.dim} != query dimension {dim}")
        probe = np.zeros((1, dim), dtype=np.float32)
        probe[0, 0] = 1.0
        hits = index.search(probe, min(5, max(int(index.count), 1)))
        if index.count and not hits[0]:
            raise ReloadError("warm-up search returned nothing from a non-empty index")

    return check


async def watch_current(
    holder: IndexHolder,
    interval_s: float,
    on_error: Callable[[str], None],
    on_reload: Callable[[ReloadOutcome], None] | None = None,
) -> None:
    """Follow CURRENT: reload whenever it names another version (``serve --watch``).

    Survives every failure (an unreadable or damaged CURRENT, a refused version, a loader
    bug): each is reported through ``on_error`` and the next tick tries again, so a good
    CURRENT published later is still followed. Each unchanged failure is reported once."""
    refused: str | None = None
    last_error: str | None = None

    def report(message: str) -> None:
        nonlocal last_error
        if message != last_error:
            on_error(message)
        last_error = message

    while True:
        await asyncio.sleep(interval_s)
        try:
            target = await asyncio.to_thread(holder._current, holder.index_dir)
        except Exception as exc:  # noqa: BLE001 - the watcher must outlive a bad CURRENT
            report(f"cannot read CURRENT: {exc}")
            continue
        if target is None or target == holder.version or target == refused:
            continue
        try:
            outcome = await asyncio.to_thread(holder.reload, target)
        except Exception as exc:  # noqa: BLE001 - ReloadError, or anything a loader raises
            refused = target
            report(str(exc))
            continue
        refused, last_error = None, None
        if on_reload is not None:
            on_reload(outcome)


def _close_quietly(index: Any) -> None:
    try:
        index.close()
    except Exception:  # noqa: BLE001
        pass


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)
