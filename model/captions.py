"""Query-like training captions whose attribute content is known.

The gallery's stored descriptions are free sentences: training can only treat a sequence's
own description as its positive, so every other walker that also fits "a woman in heels" is
pushed away as a negative. Search queries, though, name one to three attributes and are
satisfied by *every* walker with them.

This module writes captions in the training phrase family (:func:`describe.compose`), each
tagged with the attribute subset it names, so training knows exactly which sequences of a
batch a caption applies to (:func:`applies_mask`) and can use all of them as positives
(multi-positive InfoNCE in :mod:`losses`). Held-out query phrasing is never used here.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gaitsearch.model.attributes import ATTRIBUTES
from gaitsearch.model.describe import compose

GROUPS: tuple[str, ...] = tuple(ATTRIBUTES)
DEFAULT_VALUES = frozenset({"nothing", "none", "neutral", "average", "flat", "normal"})
# How many groups a caption names: mostly 1-3 like a search query, sometimes a longer one.
SIZE_CHOICES = (1, 2, 3, 4, 6)
SIZE_WEIGHTS = (0.25, 0.35, 0.2, 0.1, 0.1)


@dataclass(frozen=True)
class CaptionTable:
    """Captions per sequence: ``texts[k]`` names ``codes[k]`` (one value index per group, -1
    where the group is not mentioned); ``of_sequence[i]`` lists sequence i's caption rows;
    ``sequence_codes[i]`` is sequence i's full attribute code."""

    texts: list[str]
    codes: np.ndarray
    of_sequence: list[np.ndarray]
    sequence_codes: np.ndarray


def encode_attributes(attributes: Mapping[str, Any]) -> np.ndarray:
    """``(len(GROUPS),)`` int8: the value index per group, -1 where missing or unknown."""
    out = np.full(len(GROUPS), -1, dtype=np.int8)
    for g, group in enumerate(GROUPS):
        value = attributes.get(group)
        if value is not None and str(value) in ATTRIBUTES[group]:
            out[g] = ATTRIBUTES[group].index(str(value))
    return out


def sample_subset(
    attributes: Mapping[str, Any], rng: random.Random, size: int | None = None
) -> dict[str, str]:
    """A random subset of a walker's known attributes, as a query would name them.

    Subsets made only of default values ("nothing", "none", ...) are redrawn a few times,
    since nobody searches for "a person carrying nothing"; an empty dict if none is found.
    """
    known = [g for g in GROUPS if str(attributes.get(g)) in ATTRIBUTES[g]]
    if not known:
        return {}
    for _ in range(8):
        k = size or rng.choices(SIZE_CHOICES, weights=SIZE_WEIGHTS)[0]
        chosen = rng.sample(known, min(k, len(known)))
        subset = {g: str(attributes[g]) for g in chosen}
        if not all(v in DEFAULT_VALUES for v in subset.values()):
            return subset
    return subset


def build_captions(
    attribute_sets: Sequence[Mapping[str, Any]], per_sequence: int = 8, seed: int = 0
) -> CaptionTable:
    """``per_sequence`` tagged captions for every sequence (deterministic for a seed).

    Identical (text, subset) pairs are stored once, so the table's texts are distinct and
    can be embedded once through the description cache.
    """
    rows: dict[tuple[str, bytes], int] = {}
    texts: list[str] = []
    codes: list[np.ndarray] = []
    of_sequence: list[np.ndarray] = []
    for i, attributes in enumerate(attribute_sets):
        rng = random.Random(zlib.crc32(f"captions:{seed}:{i}".encode()))
        mine: list[int] = []
        for _ in range(per_sequence):
            subset = sample_subset(attributes, rng)
            if not subset:
                continue
            text = compose(subset, rng)
            code = encode_attributes(subset)
            row = rows.setdefault((text, code.tobytes()), len(texts))
            if row == len(texts):
                texts.append(text)
                codes.append(code)
            mine.append(row)
        of_sequence.append(np.array(mine, dtype=np.int64))
    sequence_codes = (
        np.stack([encode_attributes(a) for a in attribute_sets])
        if attribute_sets
        else np.zeros((0, len(GROUPS)), dtype=np.int8)
    )
    return CaptionTable(
        texts,
        np.stack(codes) if codes else np.zeros((0, len(GROUPS)), dtype=np.int8),
        of_sequence,
        sequence_codes,
    )


def applies_mask(caption_codes: np.ndarray, sequence_codes: np.ndarray) -> np.ndarray:
    """``(C, S)`` bool: caption c applies to sequence s (every group it names matches)."""
    c = caption_codes[:, None, :]
    s = sequence_codes[None, :, :]
    return np.all((c < 0) | (c == s), axis=-1)
