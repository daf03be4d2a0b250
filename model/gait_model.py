"""The inference front of a checkpoint: preprocessing + motion encoder + its search space.

:func:`gaitsearch.model.checkpoint.load_checkpoint` returns one. Everything that depends on
which search space the checkpoint was trained for is delegated to its
:class:`~gaitsearch.model.search_space.SearchSpace`; nothing here branches on the space.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from gaitsearch.model.checkpoint import CheckpointConfig, CheckpointError, TextEncoderInfo
from gaitsearch.model.motion_encoder import MotionEncoder
from gaitsearch.model.preprocess import prepare_batch
from gaitsearch.model.search_space import SearchSpace, space_for


class GaitModel:
    """A loaded checkpoint, ready to embed walks and read queries into its search space."""

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
        self.search_space: SearchSpace = space_for(self.encoder)

    @property
    def dim(self) -> int:
        """Dimension of the search space (index vectors and query vectors)."""
        return self.search_space.dim

    @property
    def space(self) -> str:
        """The search space's name (``text`` or ``attributes``)."""
        return self.search_space.name

    @property
    def text_encoder_info(self) -> TextEncoderInfo:
        return self.config.text_encoder

    def embed_queries(self, text_vectors: np.ndarray) -> np.ndarray:
        """Frozen text embeddings ``(n, text_dim)`` → query vectors ``(n, dim)`` to score
        against this model's gallery vectors by inner product."""
        return self.search_space.query_vectors(text_vectors)

    def embed_examples(
        self, sequences: Sequence[np.ndarray], fps: Sequence[float] | None = None
    ) -> np.ndarray:
        """Query vectors for "more like this": walks as queries."""
        return self.search_space.example_vectors(self.embed_sequences(sequences, fps))

    def embed_sequences(
        self,
        sequences: Sequence[np.ndarray],
        fps: Sequence[float] | None = None,
        batch_size: int = 256,
    ) -> np.ndarray:
        """``(n, dim)`` float32 gallery vectors of validated OpenPose-18 arrays."""
        if fps is None:
            fps = [25.0] * len(sequences)
        out = np.zeros((len(sequences), self.dim), dtype=np.float32)
        for start in range(0, len(sequences), batch_size):
            stop = start + batch_size
            x, mask = prepare_batch(sequences[start:stop], fps[start:stop], self.config.preprocess)
            with torch.inference_mode():
                emb = self.encoder(torch.from_numpy(x), torch.from_numpy(mask))
                emb = self.search_space.gallery_vectors(emb)
            out[start:stop] = self.search_space.complete_walks(
                emb.numpy(), sequences[start:stop], fps[start:stop]
            )
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
