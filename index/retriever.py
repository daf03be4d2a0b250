"""The one query pipeline: text → query vectors → index hits → metadata.

A :class:`Retriever` is built once from a checkpoint (a
:class:`~gaitsearch.model.gait_model.GaitModel`), the frozen text encoder it was trained
with, and a live index, and refuses a mismatch of their fingerprints when built. It is a
:class:`~gaitsearch.model.query_pipeline.QueryPipeline` (text and walks into the search
space, which needs no index) plus the index. It owns every way into the index:

- ``search``: texts → hits (the CLI ``search``, the service, the benchmarks),
- ``search_example``: an example walk → hits ("more like this"),
- ``rank_labels``: a walk + free-text labels → ranked labels (zero-shot ``classify``),
- ``query_vectors``: texts → vectors in the index's space (``eval``, the build's recall check).

What differs between search spaces is the checkpoint's
:class:`~gaitsearch.model.search_space.SearchSpace`; nothing here branches on it. The service
wraps the same object in its async engine (caching and micro-batching around
:meth:`Retriever.encode`), so the CLI and HTTP give the same hits for the same index.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from gaitsearch.model.query_pipeline import PipelineError, QueryPipeline

if TYPE_CHECKING:
    from gaitsearch.index.loaded_index import Hit
    from gaitsearch.index.shards import AnyIndex
    from gaitsearch.model.gait_model import GaitModel

#: every mismatch of checkpoint, text encoder and index is one of these
RetrieverError = PipelineError


class Retriever(QueryPipeline):
    """The query pipeline over a live index: checkpoint + text encoder + index, checked
    against each other once (:class:`RetrieverError` names what does not fit)."""

    def __init__(
        self,
        model: GaitModel,
        text_encoder: Any,
        index: AnyIndex | None = None,
        *,
        encode_texts: Callable[[list[str]], np.ndarray] | None = None,
    ) -> None:
        super().__init__(model, text_encoder, encode_texts=encode_texts)
        self.index: AnyIndex | None = None
        if index is not None:
            self.check_index(index)
            self.index = index

    @classmethod
    def open(
        cls,
        index_dir: Path | str,
        checkpoint: Path | str | None = None,
        text_encoder_name: str | None = None,
    ) -> Retriever:
        """Load checkpoint (default: the shipped one), its text encoder and the index
        ``CURRENT`` names; every problem is a :class:`RetrieverError` with one clear line."""
        from gaitsearch.index.loaded_index import IndexLoadError
        from gaitsearch.index.shards import open_index
        from gaitsearch.model.checkpoint import CheckpointError, load_checkpoint
        from gaitsearch.model.text_encoder import TextEncoderError

        try:
            model = load_checkpoint(checkpoint)
            encoder = text_encoder_for(model, text_encoder_name)
            index = open_index(index_dir)
        except (CheckpointError, TextEncoderError, IndexLoadError) as exc:
            raise RetrieverError(str(exc)) from exc
        try:
            return cls(model, encoder, index)
        except RetrieverError:
            index.close()
            raise

    def check_index(self, index: AnyIndex) -> None:
        """Refuse an index built by another checkpoint or for another text encoder."""
        from gaitsearch.index.loaded_index import IndexLoadError

        try:
            index.check_compatible(self.model.fingerprint, self.text_encoder.fingerprint)
        except IndexLoadError as exc:
            raise RetrieverError(str(exc)) from exc
        if index.dim != self.dim:
            raise RetrieverError(
                f"{index.path}: index {index.version} holds {index.dim}-d vectors but the "
                f"checkpoint's {self.space.name} space has {self.dim} dimensions"
            )

    def _index(self, index: AnyIndex | None) -> AnyIndex:
        found = index if index is not None else self.index
        if found is None:
            raise RetrieverError("no index: open one (Retriever.open) or pass index=")
        return found

    # -- searches ---------------------------------------------------------------------
    def search(
        self,
        texts: Sequence[str],
        k: int,
        filters: dict[str, Any] | None = None,
        index: AnyIndex | None = None,
    ) -> list[list[Hit]]:
        """Top-``k`` hits (with metadata) for each text; none for a text that names nothing
        the index can be searched by (see :meth:`understood`)."""
        vectors, understood = self.read(texts)
        hits = self._index(index).search(vectors, k, filters)
        return [row if u.grounded else [] for row, u in zip(hits, understood, strict=True)]

    def search_example(
        self,
        keypoints: np.ndarray,
        fps: float,
        k: int,
        filters: dict[str, Any] | None = None,
        exclude_id: str | None = None,
        index: AnyIndex | None = None,
    ) -> list[Hit]:
        """The ``k`` walks most like ``keypoints`` (without ``exclude_id``, the example
        itself when it was taken from the index)."""
        vector = self.example_vectors([keypoints], [fps])
        want = k + (1 if exclude_id is not None else 0)
        hits = self._index(index).search(vector, want, filters)[0]
        return [h for h in hits if h.id != exclude_id][:k]

    def close(self) -> None:
        if self.index is not None:
            self.index.close()
            self.index = None


def results_json(hits: Sequence[Hit]) -> list[dict[str, Any]]:
    """Hits as the API (and ``gaitsearch search --json``) returns them."""
    return [
        {"rank": i + 1, "id": h.id, "score": round(float(h.score), 6), "metadata": h.metadata}
        for i, h in enumerate(hits)
    ]


def text_encoder_for(model: GaitModel, name: str | None = None) -> Any:
    """The text encoder the checkpoint was trained with (name and pooling), or ``name``."""
    if name is None:
        from gaitsearch.model.checkpoint import matching_text_encoder

        return matching_text_encoder(model)
    from gaitsearch.model.text_encoder import load_text_encoder

    return load_text_encoder(name)
