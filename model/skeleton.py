"""The skeleton sequence format every part of gaitsearch speaks (see DESIGN.md).

A sequence is a float32 array ``(T, 18, 3)`` in OpenPose-18 BODY order: x, y in pixels
(y grows downwards) and a detector confidence in [0, 1]; missing joints have confidence 0.
This module names the joints, validates arrays and converts the other layouts we read
(COCO-17 arrays, OpenPose per-frame JSON) into it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

JOINT_NAMES: tuple[str, ...] = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
)  # fmt: skip
NUM_JOINTS = 18
MIN_FRAMES = 8
# Pixel coordinates beyond this are no camera's: finite but huge values (3e38) would overflow
# to inf/NaN inside the encoder.
MAX_COORDINATE = 1e5
J = {name: i for i, name in enumerate(JOINT_NAMES)}

# Left/right partner of every joint, for flip augmentation.
FLIP_PERMUTATION: tuple[int, ...] = (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16)

# Bones for drawing stick figures (pairs of joint indices).
BONES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip

# COCO-17 order: nose, l_eye, r_eye, l_ear, r_ear, l_shoulder, r_shoulder, l_elbow, r_elbow,
# l_wrist, r_wrist, l_hip, r_hip, l_knee, r_knee, l_ankle, r_ankle.
# For each OpenPose-18 joint, the COCO index it comes from (neck = -1, built from shoulders).
_COCO_TO_OPENPOSE: tuple[int, ...] = (0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)


class SkeletonError(ValueError):
    """A sequence that is not a valid skeleton; the message names the source and the problem."""


def validate_sequence(array: Any, source: str = "sequence") -> np.ndarray:
    """Check a skeleton sequence and return it as float32 ``(T, 18, 3)``.

    Raises :class:`SkeletonError` with one clear line naming ``source`` and the problem.
    """
    arr = np.asarray(array)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise SkeletonError(f"{source}: expected a numeric array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise SkeletonError(f"{source}: expected real numbers, got dtype {arr.dtype}")
    if arr.ndim != 3 or arr.shape[1:] != (NUM_JOINTS, 3):
        raise SkeletonError(
            f"{source}: wrong shape {tuple(arr.shape)}, expected (T, {NUM_JOINTS}, 3) "
            "(OpenPose-18 x, y, confidence)"
        )
    if arr.shape[0] < MIN_FRAMES:
        raise SkeletonError(f"{source}: too short, {arr.shape[0]} frames (minimum {MIN_FRAMES})")
    if not np.isfinite(arr).all():
        raise SkeletonError(f"{source}: contains NaN or infinite values")
    if np.abs(arr[..., :2]).max() > MAX_COORDINATE:
        raise SkeletonError(
            f"{source}: coordinates beyond ±{MAX_COORDINATE:g} pixels (not a camera's)"
        )
    arr = arr.astype(np.float32, copy=False)
    conf = arr[..., 2]
    if conf.min() < 0.0 or conf.max() > 1.0:
        raise SkeletonError(f"{source}: confidence outside [0, 1]")
    if not (conf > 0).any():
        raise SkeletonError(f"{source}: no joint was detected in any frame (all confidences 0)")
    return arr


def coco17_to_openpose18(array: Any, source: str = "sequence") -> np.ndarray:
    """Convert ``(T, 17, 3)`` COCO keypoints to OpenPose-18; the neck is the shoulder midpoint."""
    arr = np.asarray(array, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[1:] != (17, 3):
        raise SkeletonError(f"{source}: wrong shape {tuple(arr.shape)}, expected (T, 17, 3) COCO")
    out = np.zeros((arr.shape[0], NUM_JOINTS, 3), dtype=np.float32)
    for op_idx, coco_idx in enumerate(_COCO_TO_OPENPOSE):
        if coco_idx >= 0:
            out[:, op_idx] = arr[:, coco_idx]
    ls, rs = arr[:, 5], arr[:, 6]
    both = np.minimum(ls[:, 2], rs[:, 2])
    out[:, 1, :2] = (ls[:, :2] + rs[:, :2]) / 2.0
    out[:, 1, 2] = np.where(both > 0, both, 0.0)
    return out


def to_openpose18(array: Any, source: str = "sequence") -> np.ndarray:
    """Accept OpenPose-18 or COCO-17 keypoints (``(T, J, 3)``) and return validated OpenPose-18."""
    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[1:] == (17, 3):
        arr = coco17_to_openpose18(arr, source)
    return validate_sequence(arr, source)


def read_openpose_json_frames(paths: Sequence[Path], person: int = 0) -> np.ndarray:
    """Read per-frame OpenPose JSON files (``people[i].pose_keypoints_2d``) into ``(T, 18, 3)``.

    Frames where the person is absent become all-zero (confidence 0). BODY_25 output is cut
    to its first 18 joints after remapping (BODY_25 puts mid-hip at 8).
    """
    frames = []
    for path in paths:
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SkeletonError(f"{path}: not readable OpenPose JSON ({exc})") from exc
        people = doc.get("people") if isinstance(doc, dict) else None
        if not isinstance(people, list):
            raise SkeletonError(f"{path}: no 'people' list")
        if len(people) <= person:
            frames.append(np.zeros((NUM_JOINTS, 3), dtype=np.float32))
            continue
        flat = np.asarray(people[person].get("pose_keypoints_2d", []), dtype=np.float32)
        if flat.size == 18 * 3:
            frames.append(flat.reshape(18, 3))
        elif flat.size == 25 * 3:
            b25 = flat.reshape(25, 3)
            # BODY_25: 0 nose,1 neck,2-7 arms,8 midhip,9-11 right leg,12-14 left leg,15-18 face
            frames.append(b25[[0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]])
        else:
            raise SkeletonError(
                f"{path}: pose_keypoints_2d has {flat.size} values, expected 54 (18 joints) "
                "or 75 (BODY_25)"
            )
    if not frames:
        raise SkeletonError("no OpenPose JSON frames given")
    return np.stack(frames).astype(np.float32)


def y_points_down(array: np.ndarray) -> bool:
    """True when the head is above the feet in image coordinates (y grows downwards).

    Some DenseGait copies store y negated; callers flip those instead of assuming.
    """
    conf = array[..., 2] > 0
    head = [J["nose"], J["neck"]]
    feet = [J["r_ankle"], J["l_ankle"]]
    hy = np.where(conf[:, head], array[:, head, 1], np.nan)
    fy = np.where(conf[:, feet], array[:, feet, 1], np.nan)
    with np.errstate(all="ignore"):
        diff = np.nanmean(fy) - np.nanmean(hy)
    return bool(np.isnan(diff) or diff > 0)
