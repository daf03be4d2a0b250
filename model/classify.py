"""Zero-shot recognition: rank any set of labels for one skeleton sequence.

Each label is expanded into several short descriptions (the describer's
``label_descriptions``); the mean of their text embeddings, renormalised, is the label's
prototype. A sequence is embedded by the motion encoder and the labels are ranked by cosine
similarity to their prototypes — the paper's action-recognition half, for any label set.
With an attribute-space checkpoint the phrases go through its query head and the score is
the walk's log-likelihood ratio for what each label names (comparable across labels).
The CLI (`gaitsearch classify`) and `POST /classify` both score through
:meth:`gaitsearch.index.retriever.Retriever.rank_labels` / ``label_scores``; this module
only says which phrases stand for a label.
"""

from __future__ import annotations


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


def parse_labels(text: str) -> list[str]:
    """Comma-separated labels, stripped, empty and repeated ones dropped."""
    labels = [part.strip() for part in text.split(",")]
    return list(dict.fromkeys(label for label in labels if label))
