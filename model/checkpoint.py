"""Checkpoints: a directory with ``model.safetensors`` and ``config.json``.

The config records everything inference needs (encoder hyper-parameters, preprocessing) and
the identity of the frozen text encoder (name, dim, pooling, fingerprint of its outputs on
fixed sentences). Loading beside a different text encoder is refused. No pickles.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gaitsearch.model.motion_encoder import MotionEncoder, MotionEncoderConfig
from gaitsearch.model.preprocess import PreprocessConfig, prepare_batch
from gaitsearch.model.query_head import flush_to_zero, query_vectors_numpy
from pydantic import BaseModel, Field, ValidationError

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded or used; the message says why."""


class TextEncoderInfo(BaseModel):
    name: str
    dim: int
    pooling: str | None = None
    fingerprint: str


class CheckpointConfig(BaseModel):
    format_version: int = FORMAT_VERSION
    encoder: MotionEncoderConfig
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    text_encoder: TextEncoderInfo
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def default_checkpoint_path() -> Path:
    """The shipped checkpoint, trained on the synthetic gait world."""
    return Path(__file__).resolve().parent / "checkpoints" / "default"


class GaitModel:
    """A loaded checkpoint: preprocessing + motion encoder, ready to embed sequences."""

    def __init__(
        self,
        config: CheckpointConfig,
        encoder: MotionEncoder,
        fingerprint: str,
        path: Path | None = None,
    ) -> None:
        self.config = config
        self.encoder = encoder.eval()
        self.fingerprint = fingerprint
        self.path = path
        self._lock = threading.Lock()
        self._query_head: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def dim(self) -> int:
        """Dimension of the search space (index vectors and query vectors)."""
        return self.config.encoder.out_dim

    @property
    def space(self) -> str:
        """``text`` (vectors in the text encoder's space) or ``attributes`` (see
        :mod:`gaitsearch.model.query_head`)."""
        return self.config.encoder.space

    def embed_queries(self, text_vectors: np.ndarray) -> np.ndarray:
        """Frozen text embeddings ``(n, text_dim)`` → query vectors ``(n, dim)`` to score
        against this model's gallery vectors by inner product (text space: L2-normalised
        copies; attribute space: the query head's named-value probabilities)."""
        text_vectors = np.asarray(text_vectors, dtype=np.float32)
        if text_vectors.ndim != 2:
            raise ValueError(f"text vectors must be 2-D, got shape {text_vectors.shape}")
        if self.space == "text":
            norms = np.linalg.norm(text_vectors, axis=1, keepdims=True)
            return (text_vectors / np.maximum(norms, 1e-8)).astype(np.float32)
        if self._query_head is None:
            head = self.encoder.query_head
            self._query_head = (
                head.linear.weight.detach().numpy().copy(),
                head.linear.bias.detach().numpy().copy(),
            )
        weight, bias = self._query_head
        if text_vectors.shape[1] != weight.shape[1]:
            raise ValueError(
                f"text vectors have dim {text_vectors.shape[1]}, the query head expects "
                f"{weight.shape[1]}"
            )
        return query_vectors_numpy(
            text_vectors, weight, bias, self.encoder.attribute_sizes,
            self.config.encoder.query_temperature,
        )  # fmt: skip

    def embed_examples(
        self, sequences: Sequence[np.ndarray], fps: Sequence[float] | None = None
    ) -> np.ndarray:
        """Query vectors for "more like this": a walk as a query. Text space: its embedding;
        attribute space: its recognised attribute distribution (so a gallery walk scores the
        expected log-likelihood ratio of the example's attributes)."""
        vectors = self.embed_sequences(sequences, fps)
        if self.space == "text":
            return vectors
        prior = self.encoder.attribute_log_prior.numpy()
        return flush_to_zero(np.exp(vectors + prior).astype(np.float32))

    @property
    def text_encoder_info(self) -> TextEncoderInfo:
        return self.config.text_encoder

    def embed_sequences(
        self,
        sequences: Sequence[np.ndarray],
        fps: Sequence[float] | None = None,
        batch_size: int = 256,
    ) -> np.ndarray:
        """``(n, dim)`` float32 gallery vectors of validated OpenPose-18 arrays (text space:
        L2-normalised; attribute space: log-likelihood ratios)."""
        if fps is None:
            fps = [25.0] * len(sequences)
        out = np.zeros((len(sequences), self.dim), dtype=np.float32)
        for start in range(0, len(sequences), batch_size):
            stop = start + batch_size
            x, mask = prepare_batch(sequences[start:stop], fps[start:stop], self.config.preprocess)
            with torch.inference_mode():
                emb = self.encoder(torch.from_numpy(x), torch.from_numpy(mask))
                if self.space == "text":
                    emb = torch.nn.functional.normalize(emb, dim=-1)
            out[start:stop] = emb.numpy()
        return out

    def check_text_encoder(self, fingerprint: str, name: str = "") -> None:
        """Refuse a text encoder other than the one this checkpoint was trained with."""
        want = self.config.text_encoder
        if fingerprint != want.fingerprint:
            raise CheckpointError(
                f"checkpoint {self.path or ''} was trained with text encoder {want.name!r} "
                f"(dim {want.dim}, fingerprint {want.fingerprint}) but the loaded text encoder "
                f"{name!r} has fingerprint {fingerprint}; use the same text encoder or retrain"
            )


def weights_fingerprint(weights_path: Path, config: CheckpointConfig) -> str:
    digest = hashlib.sha256()
    digest.update(weights_path.read_bytes())
    digest.update(config.encoder.model_dump_json().encode())
    digest.update(config.preprocess.model_dump_json().encode())
    return digest.hexdigest()[:16]


def save_checkpoint(encoder: MotionEncoder, config: CheckpointConfig, path: Path | str) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into directory ``path`` (atomically
    per file)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    tmp = path / (WEIGHTS_FILE + ".tmp")
    save_file(state, str(tmp), metadata={"format": "pt"})
    tmp.replace(path / WEIGHTS_FILE)
    tmp_cfg = path / (CONFIG_FILE + ".tmp")
    tmp_cfg.write_text(config.model_dump_json(indent=2) + "\n")
    tmp_cfg.replace(path / CONFIG_FILE)
    return path


def load_checkpoint(path: Path | str | None = None) -> GaitModel:
    """Load a checkpoint directory (or its ``config.json``/``model.safetensors``)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path) if path is not None else default_checkpoint_path()
    if path.is_file():
        path = path.parent
    cfg_path, weights_path = path / CONFIG_FILE, path / WEIGHTS_FILE
    for needed in (cfg_path, weights_path):
        if not needed.is_file():
            raise CheckpointError(
                f"{needed}: missing (a checkpoint directory holds {CONFIG_FILE} and {WEIGHTS_FILE})"
            )
    try:
        config = CheckpointConfig.model_validate(json.loads(cfg_path.read_text()))
    except (json.JSONDecodeError, ValidationError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{cfg_path}: not a valid checkpoint config ({exc})") from exc
    if config.format_version != FORMAT_VERSION:
        raise CheckpointError(
            f"{cfg_path}: format_version {config.format_version} is not "
            f"supported (expected {FORMAT_VERSION})"
        )
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{weights_path}: corrupt or truncated weights ({exc})") from exc
    encoder = MotionEncoder(config.encoder)
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{weights_path}: weights do not match the config ({first})") from exc
    return GaitModel(config, encoder, weights_fingerprint(weights_path, config), path)


def matching_text_encoder(model: GaitModel) -> Any:
    """Load the text encoder a checkpoint was trained with and verify its fingerprint.

    Raises :class:`CheckpointError` when the encoder found here differs from the recorded one.
    """
    from gaitsearch.model.text_encoder import TextEncoderError, load_text_encoder

    info = model.config.text_encoder
    try:
        encoder = load_text_encoder(info.name)
        if info.pooling and encoder.pooling != info.pooling:
            encoder = load_text_encoder(info.name, info.pooling)
    except TextEncoderError as exc:
        raise CheckpointError(str(exc)) from exc
    model.check_text_encoder(encoder.fingerprint, encoder.name)
    return encoder
