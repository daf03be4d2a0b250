"""Text and walks into a checkpoint's search space: the model half of the one query pipeline.

:class:`QueryPipeline` is built from a checkpoint (a
:class:`~gaitsearch.model.gait_model.GaitModel`) and the frozen text encoder it was trained
with, and refuses any other text encoder. It is the only way text becomes query vectors
(``query_vectors``), walks become example queries (``example_vectors``) and free-text labels
are scored for a walk (``rank_labels``). :class:`gaitsearch.index.retriever.Retriever` adds
the index (hits and metadata) on top; ``eval`` and training's validation use this half, which
needs no index. Nothing here branches on the search space: that is the checkpoint's
:class:`~gaitsearch.model.search_space.SearchSpace`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from gaitsearch.model.gait_model import GaitModel
    from gaitsearch.model.understanding import Understanding

CACHE_SIZE = 4096


class PipelineError(RuntimeError):
    """The checkpoint, text encoder (or index) do not fit together; the message says why."""


class QueryPipeline:
    """Checkpoint + its frozen text encoder, checked against each other once."""

    def __init__(
        self,
        model: GaitModel,
        text_encoder: Any,
        *,
        encode_texts: Callable[[list[str]], np.ndarray] | None = None,
    ) -> None:
        """``encode_texts`` replaces ``text_encoder.encode`` for the frozen text embeddings
        (the service's ONNX query encoder, or a disk cache); it must give the same vectors."""
        from gaitsearch.model.checkpoint import CheckpointError

        try:
            model.check_text_encoder(text_encoder.fingerprint, text_encoder.name)
        except CheckpointError as exc:
            raise PipelineError(str(exc)) from exc
        self.model = model
        self.text_encoder = text_encoder
        self.space = model.search_space
        self.dim = int(model.dim)
        self._encode_texts = encode_texts or text_encoder.encode
        from gaitsearch.model.understanding import QueryReader

        try:
            self.reader = QueryReader.for_model(model)
        except CheckpointError as exc:
            raise PipelineError(str(exc)) from exc
        # How recent texts were understood (filled by ``read``, so the service's engine, which
        # caches vectors, can answer ``understood`` without a second encoder call).
        self._understood: OrderedDict[str, Understanding] = OrderedDict()
        self._words: OrderedDict[str, np.ndarray] = OrderedDict()  # single-word embeddings
        self._lock = threading.Lock()

    # -- text → vectors ---------------------------------------------------------------
    def text_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """The frozen text encoder's embeddings ``(n, text_dim)`` of ``texts``."""
        return np.asarray(self._encode_texts(list(texts)), dtype=np.float32)

    def query_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, dim)`` query vectors of ``texts`` in the index's space."""
        return self.space.query_vectors(self.text_vectors(texts))

    def read(self, texts: Sequence[str]) -> tuple[np.ndarray, list[Understanding]]:
        """What each text was understood as, and its query vector answered only on that
        (all zeros for a text that is not grounded: it must get no results)."""
        texts = list(texts)
        text_vectors = self.text_vectors(texts)
        understood = self.reader.read(texts, text_vectors, self._word_vectors)
        vectors = self.space.query_vectors(text_vectors)
        if self.reader.fitted:
            vectors = self.space.finish_queries(self.reader.restrict(vectors, understood))
        else:  # no threshold chosen from data (a checkpoint never fitted): describe only
            understood = [replace(u, grounded=True, detail=None) for u in understood]
        with self._lock:
            for text, u in zip(texts, understood, strict=True):
                self._understood[text] = u
                self._understood.move_to_end(text)
            while len(self._understood) > CACHE_SIZE:
                self._understood.popitem(last=False)
        return vectors, understood

    def understood(self, text: str) -> Understanding:
        """How ``text`` was understood (from the last :meth:`read` of it, else read now)."""
        with self._lock:
            found = self._understood.get(text)
            if found is not None:  # kept as long as the engine's LRU keeps the vector
                self._understood.move_to_end(text)
        return found if found is not None else self.read([text])[1][0]

    def encode(self, texts: list[str]) -> np.ndarray:
        """The query vectors of :meth:`read` under the name the service's engine calls (its
        ``QueryEncoder`` protocol: ``dim`` and ``encode``)."""
        return self.read(texts)[0]

    def _word_vectors(self, texts: list[str]) -> np.ndarray:
        """Text embeddings for the reader's word analysis, single words kept in an LRU."""
        with self._lock:
            cached = {t: self._words[t] for t in texts if t in self._words}
        missing = [t for t in dict.fromkeys(texts) if t not in cached]
        if missing:
            fresh = self.text_vectors(missing)
            with self._lock:
                for text, vec in zip(missing, fresh, strict=True):
                    cached[text] = vec
                    if " " not in text:
                        self._words[text] = vec
                while len(self._words) > CACHE_SIZE:
                    self._words.popitem(last=False)
        return np.stack([cached[t] for t in texts]).astype(np.float32)

    def example_vectors(
        self, sequences: Sequence[np.ndarray], fps: Sequence[float] | None = None
    ) -> np.ndarray:
        """Walks as query vectors ("more like this")."""
        return self.model.embed_examples(sequences, fps)

    # -- zero-shot labels -------------------------------------------------------------
    def walk_vector(self, keypoints: np.ndarray, fps: float) -> np.ndarray:
        """One walk's gallery vector ``(dim,)``, as the index would store it."""
        return self.model.embed_sequences([keypoints], [fps])[0]

    def label_scores(
        self, walk: np.ndarray, phrase_vectors: np.ndarray, counts: list[int]
    ) -> np.ndarray:
        """Score of each label for a walk vector: the label's prototype (the pooled query
        vectors of its ``counts[i]`` phrases) against the walk."""
        return self.space.pool_prototypes(phrase_vectors, counts) @ walk

    def rank_labels(
        self, keypoints: np.ndarray, fps: float, labels: Sequence[str]
    ) -> list[tuple[str, float]]:
        """``labels`` ranked for one walk (cosine in the text space, log-likelihood ratio in
        the attribute space). Raises ``ValueError`` for an empty label list."""
        from gaitsearch.model.classify import label_phrases

        labels = list(dict.fromkeys(label.strip() for label in labels if label.strip()))
        if not labels:
            raise ValueError("give at least one label")
        groups = [label_phrases(label) for label in labels]
        vectors = self.query_vectors([p for g in groups for p in g])
        scores = self.label_scores(
            self.walk_vector(keypoints, fps), vectors, [len(g) for g in groups]
        )
        order = np.argsort(-scores, kind="stable")
        return [(labels[i], float(scores[i])) for i in order]
