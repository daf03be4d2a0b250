"""The resumable training state in a work directory (apart from the kept checkpoint)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from gaitsearch.model.motion_encoder import MotionEncoder


def default_work_dir(out: Path) -> Path:
    root = os.environ.get("GAITSEARCH_CACHE_DIR") or str(Path.home() / ".cache" / "gaitsearch")
    tag = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:12]
    return Path(root) / "runs" / f"{out.name}-{tag}"


STATE_FILE = "state.json"


def save_state(
    work: Path,
    encoder: MotionEncoder,
    loss_fn: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    elapsed: float,
    best: float,
    history: list[dict[str, Any]],
) -> None:
    tensors = {
        "encoder": encoder.state_dict(),
        "loss": loss_fn.state_dict(),
        "optimizer": optimizer.state_dict(),
    }
    tmp = work / "tensors.pt.tmp"
    torch.save(tensors, tmp)
    tmp.replace(work / "tensors.pt")
    meta = {"step": step, "elapsed": elapsed, "best": best, "history": history}
    (work / (STATE_FILE + ".tmp")).write_text(json.dumps(meta))
    (work / (STATE_FILE + ".tmp")).replace(work / STATE_FILE)


def load_state(
    work: Path,
    encoder: MotionEncoder,
    loss_fn: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
) -> tuple[int, float, float, list[dict[str, Any]]]:
    meta_path = work / STATE_FILE
    if not meta_path.is_file() or not (work / "tensors.pt").is_file():
        raise FileNotFoundError(f"{work}: no training state to resume from")
    tensors = torch.load(work / "tensors.pt", map_location="cpu", weights_only=True)
    encoder.load_state_dict(tensors["encoder"])
    loss_fn.load_state_dict(tensors["loss"])
    optimizer.load_state_dict(tensors["optimizer"])
    meta = json.loads(meta_path.read_text())
    return int(meta["step"]), float(meta["elapsed"]), float(meta["best"]), list(meta["history"])
