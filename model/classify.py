"""Zero-shot recognition: rank any set of labels for one skeleton sequence.

Each label is expanded into several short descriptions (the describer's
``label_descriptions``); the mean of their text embeddings, renormalised, is the label's
prototype. A sequence is embedded by the motion encoder and the labels are ranked by cosine
similarity to their prototypes — the paper's action-recognition half, for any label set.
With an attribute-space checkpoint the phrases go through its query head and the score is
the walk's log-likelihood ratio for what each label names (comparable across labels).
The CLI (`gaitsearch classify`) and `POST /classify` build the same prototypes.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def label_phrases(label: str) -> list[str]:
    """Several descriptions of a free-text label (from the describer, plus the label)."""
    label = label.strip()
    try:
        from gaitsearch.model.describe import label_descriptions
    except ImportError:  # the describer module is optional at import time
        label_descriptions = None
    phrases: list[str] = []
    if label_descriptions is not None:
        try:
            phrases = [p for p in label_descriptions(label) if p]
        except (KeyError, ValueError):
            phrases = []
    if not phrases:
        phrases = [
            f"a person {label}",
            f"someone who is {label}",
            f"a walking person, {label}",
        ]
    return list(dict.fromkeys([label, *phrases]))


def value_phrases(group: str, value: str) -> list[str]:
    """The describer's phrases for one attribute value (zero-shot attribute recognition)."""
    try:
        from gaitsearch.model.describe import attribute_phrases
    except ImportError:
        attribute_phrases = None
    phrases: list[str] = []
    if attribute_phrases is not None:
        try:
            phrases = [p for p in attribute_phrases(group, value) if p]
        except (KeyError, ValueError):
            phrases = []
    if not phrases:
        readable = value.replace("_", " ")
        phrases = [f"a person, {group}: {readable}", f"a {readable} person walking"]
    return phrases


def label_prototypes(text_encoder: Any, labels: list[str], model: Any = None) -> np.ndarray:
    """``(len(labels), dim)`` prototypes: the mean of each label's phrase vectors.

    Without a ``model`` (or with a text-space one): mean text embeddings, L2-normalised.
    With an attribute-space ``model``: the mean of its query head's outputs, unnormalised, so
    scores are log-likelihood ratios, comparable across labels."""
    groups = [label_phrases(label) for label in labels]
    vectors = text_encoder.encode_cached([p for g in groups for p in g])
    if model is not None:
        vectors = model.embed_queries(vectors)
    normalise = model is None or model.space == "text"
    return pool_prototypes(vectors, [len(g) for g in groups], normalise)


def pool_prototypes(vectors: np.ndarray, counts: list[int], normalise: bool) -> np.ndarray:
    """Consecutive runs of ``counts`` rows averaged into one prototype each."""
    rows, start = [], 0
    for n in counts:
        proto = np.asarray(vectors[start : start + n]).mean(0)
        if normalise:
            proto = proto / max(float(np.linalg.norm(proto)), 1e-8)
        rows.append(proto)
        start += n
    return np.stack(rows).astype(np.float32)


def parse_labels(text: str) -> list[str]:
    """Comma-separated labels, stripped, empty and repeated ones dropped."""
    labels = [part.strip() for part in text.split(",")]
    return list(dict.fromkeys(label for label in labels if label))


def classify_sequence(
    model: Any, text_encoder: Any, sequence: np.ndarray, fps: float, labels: list[str]
) -> list[tuple[str, float]]:
    """Labels ranked by the score of the sequence against each label's prototype (cosine
    in the text space, log-likelihood ratio in the attribute space).

    ``model`` is a :class:`GaitModel`; ``sequence`` a validated ``(T, 18, 3)`` array.
    Raises ``ValueError`` for an empty label list.
    """
    labels = list(dict.fromkeys(label.strip() for label in labels if label.strip()))
    if not labels:
        raise ValueError("give at least one label")
    model.check_text_encoder(text_encoder.fingerprint, text_encoder.name)
    emb = model.embed_sequences([sequence], [fps])[0]
    scores = label_prototypes(text_encoder, labels, model) @ emb
    order = np.argsort(-scores, kind="stable")
    return [(labels[i], float(scores[i])) for i in order]
