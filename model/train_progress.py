"""Training progress on the terminal."""

from __future__ import annotations

from typing import Any


class TrainingProgress:
    """A rich progress bar showing loss and sequences per second (or nothing)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._task: Any = None
        self._by_time = False

    def note(self, what: str, done: int, total: int) -> None:
        if self.enabled and (done == total or done % 5000 == 0):
            print(f"{what}: {done}/{total}", flush=True)

    def start(self, total_steps: int | None, budget_s: float | None) -> None:
        if not self.enabled:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._by_time = total_steps is None
        self._bar = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f}" + (" s" if self._by_time else "")),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
        )
        self._bar.start()
        self._task = self._bar.add_task(
            "train", total=budget_s if self._by_time else total_steps, info=""
        )

    def update(self, step: int, elapsed: float, loss: float, rate: float) -> None:
        if self._bar is None:
            return
        self._bar.update(
            self._task,
            completed=elapsed if self._by_time else step,
            info=f"step {step} loss {loss:.4f} {rate:.0f} seq/s",
        )

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
