"""Checkpoints: a directory with ``model.safetensors`` and ``config.json``.

The config records everything inference needs (encoder hyper-parameters, preprocessing) and
the identity of the frozen text encoder (name, dim, pooling, fingerprint of its outputs on
fixed sentences). Loading beside a different text encoder is refused. No pickles.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gaitsearch.model.motion_encoder import MotionEncoder, MotionEncoderConfig
from gaitsearch.model.preprocess import PreprocessConfig
from pydantic import BaseModel, Field, ValidationError

if TYPE_CHECKING:
    from gaitsearch.model.gait_model import GaitModel

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
    # Query understanding (grounded threshold, caption-similarity gate, confidence
    # calibration, their validation numbers): written by `gaitsearch understanding fit`.
    understanding: dict[str, Any] | None = None
    # sha256 of model.safetensors, written by save_checkpoint and verified by load_checkpoint
    # (None in checkpoints saved before it existed: those load unverified). Not part of the
    # fingerprint, so indexes built before it keep matching.
    weights_sha256: str | None = None
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def default_checkpoint_path() -> Path:
    """The shipped checkpoint, trained on the synthetic gait world."""
    return Path(__file__).resolve().parent / "checkpoints" / "default"


def weights_fingerprint(weights_path: Path, config: CheckpointConfig) -> str:
    digest = hashlib.sha256()
    digest.update(weights_path.read_bytes())
    # A field added later and unset is left out, so older checkpoints keep their fingerprint.
    unset_later = {"measured"} if config.encoder.measured is None else set()
    digest.update(config.encoder.model_dump_json(exclude=unset_later).encode())
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
    # The config carries the weights' checksum, so loading can refuse a damaged file.
    config = config.model_copy(update={"weights_sha256": file_sha256(tmp)})
    tmp.replace(path / WEIGHTS_FILE)
    tmp_cfg = path / (CONFIG_FILE + ".tmp")
    tmp_cfg.write_text(config.model_dump_json(indent=2) + "\n")
    tmp_cfg.replace(path / CONFIG_FILE)
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify_weights(weights_path: Path, config: CheckpointConfig) -> None:
    """Refuse weights whose sha256 differs from the one ``config.json`` records (a flipped
    bit, a truncated copy, a file swapped in); checkpoints without a checksum pass."""
    if config.weights_sha256 is None:
        return
    try:
        actual = file_sha256(weights_path)
    except OSError as exc:
        raise CheckpointError(f"{weights_path}: cannot be read ({exc.strerror or exc})") from exc
    if actual != config.weights_sha256.lower():
        raise CheckpointError(
            f"{weights_path}: sha256 {actual[:16]}... does not match the "
            f"{config.weights_sha256[:16]}... recorded in {CONFIG_FILE}; the weights are "
            "damaged or not the ones saved with this config"
        )


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
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:3]
        )
        raise CheckpointError(f"{cfg_path}: not a valid checkpoint config ({problems})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{cfg_path}: not a valid checkpoint config ({exc})") from exc
    if config.format_version != FORMAT_VERSION:
        raise CheckpointError(
            f"{cfg_path}: format_version {config.format_version} is not "
            f"supported (expected {FORMAT_VERSION})"
        )
    verify_weights(weights_path, config)
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{weights_path}: corrupt or truncated weights ({exc})") from exc
    from gaitsearch.model.gait_model import GaitModel

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
