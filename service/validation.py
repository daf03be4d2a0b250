"""Input checks the routes share: sequence ids and keypoint arrays (a 422 that says why)."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import HTTPException
from gaitsearch.model.gallery import ID_PATTERN
from gaitsearch.model.skeleton import SkeletonError, to_openpose18


def check_id(seq_id: str) -> str:
    """Ids are file stems: letters, digits, '_', '-', '.'; nothing path-like."""
    if not ID_PATTERN.fullmatch(seq_id) or ".." in seq_id:
        raise HTTPException(
            422, f"id: {seq_id[:80]!r} is not a sequence id (letters, digits, '_', '-', '.')"
        )
    return seq_id


def check_keypoints(keypoints: Any) -> np.ndarray:
    try:
        # float64 first: a float32 cast would turn 1e300 into inf and hide the real problem.
        arr = np.asarray(keypoints, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise HTTPException(
            422, "keypoints: ragged or non-numeric array; expected (T, 18, 3) or (T, 17, 3)"
        ) from exc
    try:
        return to_openpose18(arr, "keypoints")
    except SkeletonError as exc:
        raise HTTPException(422, str(exc)) from exc
