"""Shared fixtures made by the code itself: tiny galleries and a tiny checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from gaitsearch.model.gallery import GalleryWriter, SequenceRecord  # noqa: E402


def walking_like(rng: np.random.Generator, frames: int = 60) -> np.ndarray:
    """A crude upright figure that sways: valid OpenPose-18 data for format-level tests."""
    base = np.array(
        [[0, -80], [0, -65], [-12, -63], [-15, -45], [-16, -28], [12, -63], [15, -45],
         [16, -28], [-8, -25], [-9, -5], [-10, 15], [8, -25], [9, -5], [10, 15],
         [-3, -83], [3, -83], [-6, -81], [6, -81]], dtype=np.float32,
    )  # fmt: skip
    t = np.arange(frames, dtype=np.float32)[:, None]
    seq = np.zeros((frames, 18, 3), dtype=np.float32)
    seq[..., :2] = base[None] * rng.uniform(1.5, 3.0) + rng.uniform(100, 500, size=2)
    seq[..., 0] += t * rng.uniform(-3, 3) + rng.normal(0, 1.0, size=(frames, 18))
    seq[..., 2] = rng.uniform(0.5, 1.0, size=(frames, 18))
    return seq


@pytest.fixture
def random_gallery(tmp_path: Path) -> Path:
    """20 format-valid sequences with simple attributes and descriptions."""
    rng = np.random.default_rng(0)
    root = tmp_path / "gallery"
    views = ["front", "side", "back"]
    with GalleryWriter(root) as writer:
        for i in range(20):
            view = views[i % 3]
            record = SequenceRecord(
                id=f"seq{i:04d}",
                fps=25.0,
                source="fixture",
                attributes={"view": view, "pace": "brisk" if i % 2 else "slow"},
                description=f"a person walking, seen from the {view}",
            )
            writer.add(record, walking_like(rng, 40 + i))
    return root


@pytest.fixture(scope="session")
def text_encoder():
    from gaitsearch.model.text_encoder import load_text_encoder

    return load_text_encoder()


def save_tiny_checkpoint(
    path: Path, text_encoder, seed: int = 0, space: str = "text", measured: bool = False
) -> Path:
    """A randomly initialised tiny encoder saved as a real checkpoint for ``text_encoder``
    (fast; for plumbing tests, not quality). Different seeds give different fingerprints.
    ``space="attributes"``: the attribute search space over the whole vocabulary (random
    recognition and query head)."""
    import torch
    from gaitsearch.model.checkpoint import (
        CheckpointConfig,
        TextEncoderInfo,
        save_checkpoint,
    )
    from gaitsearch.model.motion_encoder import MotionEncoder, preset

    torch.manual_seed(seed)
    options: dict = {"out_dim": text_encoder.dim}
    if space == "attributes":
        from gaitsearch.model.attributes import ATTRIBUTES

        vocabulary = {g: list(v) for g, v in ATTRIBUTES.items()}
        options = {
            "space": "attributes",
            "attribute_vocabulary": vocabulary,
            "out_dim": sum(len(v) for v in vocabulary.values()),
            "text_dim": text_encoder.dim,
        }
        if measured:
            from gaitsearch.model.measured import MeasuredSpace

            options["measured"] = MeasuredSpace.default_config()
    encoder = MotionEncoder(preset("tiny", **options))
    config = CheckpointConfig(
        encoder=encoder.config,
        text_encoder=TextEncoderInfo(**text_encoder.describe()),
        training={"note": "random init, test fixture"},
        # A random query head names nothing with confidence: read every group's best value
        # as a term, so plumbing tests get results (the shipped checkpoint's own threshold
        # is tested in test_model_understanding.py and test_shipped_checkpoint.py).
        understanding={"threshold": 0.0} if space == "attributes" else None,
    )
    return save_checkpoint(encoder, config, path)


@pytest.fixture(scope="session")
def make_tiny_checkpoint(text_encoder):
    """``make_tiny_checkpoint(path, seed)``: another tiny checkpoint (e.g. 'checkpoint B')."""

    def make(path: Path, seed: int = 1) -> Path:
        return save_tiny_checkpoint(path, text_encoder, seed)

    return make


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, text_encoder) -> Path:
    """The shared tiny checkpoint (seed 0) for the default text encoder."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", text_encoder, 0)
