"""Where each attribute group sits among the query head's logits (a leaf module: no torch,
so the query reader and the numpy query path share it)."""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=64)
def group_layout(sizes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The head's logit columns for groups of ``sizes`` values: each group's first column,
    its width (values + "not named", which comes last) and the columns of values."""
    widths = np.array([n + 1 for n in sizes], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.int64)
    values = np.ones(int(widths.sum()), dtype=bool)
    values[starts + widths - 1] = False
    out = starts, widths, np.flatnonzero(values)
    for array in out:  # shared by every caller (cached): read-only
        array.flags.writeable = False
    return out
