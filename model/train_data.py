"""Training data in memory: the gallery, its description vectors, caption targets.

The whole training gallery is loaded once (raw arrays + fps), and every distinct description
is embedded once through the on-disk :class:`EmbeddingCache`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from gaitsearch.model.captions import CaptionTable, applies_mask, build_captions
from gaitsearch.model.embedding_cache import EmbeddingCache
from gaitsearch.model.evaluate import group_key
from gaitsearch.model.gallery import GalleryError, SequenceRecord, iter_gallery, scan_gallery

if TYPE_CHECKING:
    import torch


@dataclass
class TrainingSet:
    """A gallery in memory: raw sequences, descriptions as indices into one vector table."""

    records: list[SequenceRecord]
    sequences: list[np.ndarray]
    fps: np.ndarray
    keys: list[str]
    desc_index: list[np.ndarray]
    text_vectors: np.ndarray

    def __len__(self) -> int:
        return len(self.records)

    def subset(self, idx: np.ndarray) -> TrainingSet:
        return TrainingSet(
            [self.records[i] for i in idx],
            [self.sequences[i] for i in idx],
            self.fps[idx],
            [self.keys[i] for i in idx],
            [self.desc_index[i] for i in idx],
            self.text_vectors,
        )


def load_training_set(
    root: Path | str,
    cache: EmbeddingCache,
    on_progress: Callable[[str, int, int], None] | None = None,
    embed: bool = True,
) -> TrainingSet:
    """Read a gallery (skipping bad files) and embed its distinct descriptions once
    (``embed=False``: a run that never reads them, e.g. the attribute space with separate
    validation data, gets NaN vectors instead of paying for the text encoder)."""
    records = scan_gallery(root)
    kept, arrays = [], []
    for i, (record, arr) in enumerate(iter_gallery(root, records=records)):
        if not record.all_descriptions():
            continue  # nothing to align with
        kept.append(record)
        arrays.append(arr)
        if on_progress and i % 500 == 0:
            on_progress("loading sequences", i, len(records))
    if not kept:
        raise GalleryError(f"{root}: no readable sequence with a description")
    table: dict[str, int] = {}
    desc_index = []
    for record in kept:
        desc_index.append(
            np.array([table.setdefault(t, len(table)) for t in record.all_descriptions()])
        )
    texts = list(table)
    if not embed:
        vectors = np.full((len(texts), cache.encoder.dim), np.nan, dtype=np.float32)
    else:
        vectors = cache.encode(
            texts,
            on_progress=(lambda d, n: on_progress("embedding descriptions", d, n))
            if on_progress
            else None,
        )
    return TrainingSet(
        kept,
        arrays,
        np.array([r.fps for r in kept], dtype=np.float32),
        [group_key(r) for r in kept],
        desc_index,
        vectors,
    )


def description_targets(
    data: TrainingSet, batch: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    """Per sequence, the normalised mean of ``k`` of its descriptions sampled this step.

    Descriptions mention random subsets of a walker's attributes; averaging a few gives a
    target that covers more of them than any single sentence (k=1: one description).
    """
    out = np.zeros((len(batch), data.text_vectors.shape[1]), dtype=np.float32)
    for row, i in enumerate(batch):
        choices = data.desc_index[i]
        pick = rng.choice(choices, size=min(k, len(choices)), replace=False)
        vec = data.text_vectors[pick].mean(0)
        out[row] = vec / max(float(np.linalg.norm(vec)), 1e-8)
    return out


@dataclass
class CaptionTargets:
    """Attribute-tagged captions of a training set and their embeddings."""

    table: CaptionTable
    vectors: np.ndarray

    def sample(
        self, data: TrainingSet, batch: np.ndarray, rng: np.random.Generator, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """One caption per sequence (its description where it has no tagged caption) and the
        ``(B, B)`` positives mask: ``[i, j]`` when caption j applies to sequence i."""
        out = np.zeros((len(batch), self.vectors.shape[1]), dtype=np.float32)
        codes = np.full((len(batch), self.table.codes.shape[1]), -2, dtype=np.int8)
        for row, i in enumerate(batch):
            mine = self.table.of_sequence[i]
            if len(mine):
                pick = int(rng.choice(mine))
                out[row] = self.vectors[pick]
                codes[row] = self.table.codes[pick]
        untagged = codes[:, 0] == -2
        if untagged.any():
            out[untagged] = description_targets(data, batch[untagged], k, rng)
        positives = applies_mask(codes, self.table.sequence_codes[batch]).T
        positives[:, untagged] = False
        positives[np.arange(len(batch)), np.arange(len(batch))] = True
        return out, positives


def caption_targets(
    data: TrainingSet,
    cache: EmbeddingCache,
    per_sequence: int,
    seed: int,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> CaptionTargets | None:
    """Tagged captions for every sequence with attributes (None when no sequence has any)."""
    table = build_captions([r.attributes for r in data.records], per_sequence, seed)
    if not table.texts:
        return None
    vectors = cache.encode(
        table.texts,
        on_progress=(lambda d, n: on_progress("embedding captions", d, n)) if on_progress else None,
    )
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-8)
    return CaptionTargets(table, vectors.astype(np.float32))


@dataclass
class TrainingBatch:
    """One step's batch as a search space's training loss reads it."""

    data: TrainingSet
    batch: np.ndarray  # indices into ``data``
    features: torch.Tensor  # the motion encoder's pooled features
    codes: torch.Tensor  # (B, groups) attribute value indices, -1 unknown
    captions: CaptionTargets | None
    objective: torch.nn.ModuleDict  # "loss", and "heads" when auxiliary heads train
    rng: np.random.Generator
    descriptions_per_step: int
    attribute_weight: float
