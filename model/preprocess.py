"""Confidence-aware preprocessing of skeleton sequences for the motion encoder.

Steps: normalise (centre on the pelvis, scale by body height so camera distance does not
matter, zero out missing joints), resample in time to a fixed rate and number of frames
(random window for training, centred window for evaluation; shorter sequences are padded and
masked), and training augmentations (left/right flip that swaps joints, joint dropout, body
widths: hip and shoulder separations scaled about their midpoints).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from gaitsearch.model.skeleton import FLIP_PERMUTATION, NUM_JOINTS, J
from pydantic import BaseModel, Field

_HIPS = [J["r_hip"], J["l_hip"]]
_ANKLES = [J["r_ankle"], J["l_ankle"]]
_NECK = J["neck"]


class PreprocessConfig(BaseModel):
    """Saved in every checkpoint: inference must preprocess exactly as training did."""

    n_frames: int = Field(default=32, ge=4, le=512)
    target_fps: float = Field(default=12.5, gt=0)
    scale_normalise: bool = True
    centre: str = Field(default="pelvis", pattern="^(pelvis|first_joint)$")


def _masked_mean(points: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """Mean of ``points[..., k, :2]`` over k, weighted by confidence>0; NaN if none."""
    w = (conf > 0).astype(np.float32)
    total = w.sum(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (points * w[..., None]).sum(-2) / total


def _fill_nan(series: np.ndarray) -> np.ndarray:
    """Forward/backward fill NaN rows of a ``(T, 2)`` series; all-NaN becomes zeros."""
    out = series.copy()
    valid = ~np.isnan(out[:, 0])
    if not valid.any():
        return np.zeros_like(out)
    idx = np.where(valid, np.arange(len(out)), 0)
    np.maximum.accumulate(idx, out=idx)
    out = out[idx]
    first = int(np.argmax(valid))
    out[:first] = out[first]
    return out


def body_height(seq: np.ndarray) -> float:
    """Median neck→pelvis→ankles length in pixels: a view-robust body size."""
    conf = seq[..., 2]
    pelvis = _masked_mean(seq[:, _HIPS, :2], conf[:, _HIPS])
    ankles = _masked_mean(seq[:, _ANKLES, :2], conf[:, _ANKLES])
    neck = np.where(conf[:, _NECK, None] > 0, seq[:, _NECK, :2], np.nan)
    torso = np.linalg.norm(neck - pelvis, axis=-1)
    leg = np.linalg.norm(pelvis - ankles, axis=-1)
    total = torso + leg
    total = total[np.isfinite(total)]
    if total.size == 0:
        # Fall back to the vertical extent of whatever was detected.
        ys = seq[..., 1][conf > 0]
        return float(max(ys.max() - ys.min(), 1.0)) if ys.size else 1.0
    return float(max(np.median(total), 1e-3))


def normalise(seq: np.ndarray, config: PreprocessConfig | None = None) -> np.ndarray:
    """Centre and scale one ``(T, 18, 3)`` sequence; missing joints become (0, 0, 0).

    Centring uses the pelvis averaged over the whole sequence, so the walker's own
    displacement (speed relative to body size) stays visible to the encoder.
    """
    config = config or PreprocessConfig()
    seq = np.asarray(seq, dtype=np.float32)
    conf = seq[..., 2]
    if config.centre == "first_joint":
        centre = seq[0, 0, :2]
    else:
        pelvis = _masked_mean(seq[:, _HIPS, :2], conf[:, _HIPS])
        neck = np.where(conf[:, _NECK, None] > 0, seq[:, _NECK, :2], np.nan)
        pelvis = np.where(np.isnan(pelvis), neck, pelvis)
        centre = np.nanmean(_fill_nan(pelvis), axis=0)
    out = seq.copy()
    out[..., :2] -= centre
    if config.scale_normalise:
        out[..., :2] /= body_height(seq)
    out[conf <= 0] = 0.0
    return out


def resample(
    seq: np.ndarray, fps: float, config: PreprocessConfig, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``n_frames`` frames at ``target_fps``: ``(frames, valid_mask)``.

    With ``rng`` the window start is random (training); without, the window is centred.
    Sequences shorter than the window are padded with zeros and masked out.
    """
    n = config.n_frames
    step = max(fps / config.target_fps, 1e-6)
    t = len(seq)
    span = (n - 1) * step
    if span <= t - 1:
        slack = t - 1 - span
        start = rng.uniform(0, slack) if rng is not None else slack / 2
        idx = np.rint(start + step * np.arange(n)).astype(np.int64)
        return seq[np.clip(idx, 0, t - 1)], np.ones(n, dtype=bool)
    count = int(np.floor((t - 1) / step)) + 1
    idx = np.rint(step * np.arange(count)).astype(np.int64)
    frames = np.zeros((n, NUM_JOINTS, 3), dtype=np.float32)
    frames[:count] = seq[np.clip(idx, 0, t - 1)]
    mask = np.zeros(n, dtype=bool)
    mask[:count] = True
    return frames, mask


def flip_lr(seq: np.ndarray) -> np.ndarray:
    """Mirror a *normalised* sequence: negate x and swap left/right joints."""
    out = seq[:, list(FLIP_PERMUTATION)].copy()
    out[..., 0] = -out[..., 0]
    return out


# Ranges of the body-width augmentation (factors, log-uniform): the walker's hip keypoints are
# 0.063 of stature apart and its shoulders 0.137; motion-capture joint centres put the hips at
# about 0.107 and some skeletons the shoulders at 0.21 (docs/real-clips.md).
HIP_WIDTH_RANGE = (0.8, 2.0)
SHOULDER_WIDTH_RANGE = (0.85, 1.6)
_PAIRS = ((J["l_hip"], J["r_hip"], HIP_WIDTH_RANGE),
          (J["l_shoulder"], J["r_shoulder"], SHOULDER_WIDTH_RANGE))  # fmt: skip


def vary_widths(seq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scale the hip and the shoulder separation of a normalised ``(T, 18, 3)`` sequence about
    their midpoints by random factors (one per pair, whole sequence): skeletons differ in where
    they put these joints, so widths must not decide what the encoder recognises."""
    out = seq.copy()
    for a, b, (lo, hi) in _PAIRS:
        both = (out[:, a, 2] > 0) & (out[:, b, 2] > 0)
        f = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        mid = 0.5 * (out[both, a, :2] + out[both, b, :2])
        out[both, a, :2] = mid + f * (out[both, a, :2] - mid)
        out[both, b, :2] = mid + f * (out[both, b, :2] - mid)
    return out


def joint_dropout(seq: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    """Zero each joint (whole track) with probability ``p``, as a detector miss would."""
    if p <= 0:
        return seq
    drop = rng.random(NUM_JOINTS) < p
    out = seq.copy()
    out[:, drop] = 0.0
    return out


def _fill_nan_many(series: np.ndarray) -> np.ndarray:
    """:func:`_fill_nan` of each ``(T, 2)`` series of a ``(B, T, 2)`` stack."""
    valid = ~np.isnan(series[..., 0])  # (B, T)
    t = series.shape[1]
    idx = np.where(valid, np.arange(t)[None, :], 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    first = np.argmax(valid, axis=1)  # first valid frame (0 when none)
    idx = np.maximum(idx, first[:, None])  # frames before it take its value
    out = np.take_along_axis(series, idx[..., None], axis=1)
    out[~valid.any(axis=1)] = 0.0
    return out


def _body_height_many(seq: np.ndarray) -> np.ndarray:
    """:func:`body_height` of each sequence of a ``(B, T, 18, 3)`` stack, float32 ``(B,)``."""
    conf = seq[..., 2]
    pelvis = _masked_mean(seq[:, :, _HIPS, :2], conf[:, :, _HIPS])
    ankles = _masked_mean(seq[:, :, _ANKLES, :2], conf[:, :, _ANKLES])
    neck = np.where(conf[:, :, _NECK, None] > 0, seq[:, :, _NECK, :2], np.nan)
    total = np.linalg.norm(neck - pelvis, axis=-1) + np.linalg.norm(pelvis - ankles, axis=-1)
    finite = np.isfinite(total)
    count = finite.sum(axis=1)
    ordered = np.sort(np.where(finite, total, np.inf), axis=1)  # finite values first
    rows = np.arange(len(seq))
    lo = ordered[rows, np.maximum(count - 1, 0) // 2]
    hi = ordered[rows, np.maximum(count, 1) // 2]
    heights = np.maximum((lo + hi) / np.float32(2.0), np.float32(1e-3)).astype(np.float32)
    for i in np.nonzero(count == 0)[0]:  # nothing measurable: the per-walk fallback
        heights[i] = body_height(seq[i])
    return heights


def normalise_many(frames: np.ndarray) -> np.ndarray:
    """:func:`normalise` (pelvis centring, scale normalised) of each sequence of a
    ``(B, T, 18, 3)`` float32 stack at once: the same numbers, without a Python loop."""
    seq = np.asarray(frames, dtype=np.float32)
    conf = seq[..., 2]
    pelvis = _masked_mean(seq[:, :, _HIPS, :2], conf[:, :, _HIPS])
    neck = np.where(conf[:, :, _NECK, None] > 0, seq[:, :, _NECK, :2], np.nan)
    pelvis = np.where(np.isnan(pelvis), neck, pelvis)
    centre = np.nanmean(_fill_nan_many(pelvis), axis=1)  # (B, 2)
    out = seq.copy()
    out[..., :2] -= centre[:, None, None, :]
    out[..., :2] /= _body_height_many(seq)[:, None, None, None]
    out[conf <= 0] = 0.0
    return out


def prepare_batch(
    sequences: Sequence[np.ndarray],
    fps: Sequence[float],
    config: PreprocessConfig,
    rng: np.random.Generator | None = None,
    flip_p: float = 0.0,
    dropout_p: float = 0.0,
    widths_p: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Model input ``(B, n_frames, 54)`` float32 and valid mask ``(B, n_frames)`` bool.

    Augmentations apply only when ``rng`` is given (training).
    """
    if rng is None and config.centre == "pelvis" and config.scale_normalise and len(sequences):
        # Inference: resample each walk, then normalise the whole batch at once.
        stack = np.zeros((len(sequences), config.n_frames, NUM_JOINTS, 3), dtype=np.float32)
        masks = np.zeros((len(sequences), config.n_frames), dtype=bool)
        for i, (seq, rate) in enumerate(zip(sequences, fps, strict=True)):
            stack[i], masks[i] = resample(np.asarray(seq, dtype=np.float32), float(rate), config)
        stack = normalise_many(stack)
        stack[~masks] = 0.0
        return stack.reshape(len(sequences), config.n_frames, -1), masks
    batch = np.zeros((len(sequences), config.n_frames, NUM_JOINTS * 3), dtype=np.float32)
    masks = np.zeros((len(sequences), config.n_frames), dtype=bool)
    for i, (seq, rate) in enumerate(zip(sequences, fps, strict=True)):
        frames, mask = resample(np.asarray(seq, dtype=np.float32), float(rate), config, rng)
        frames = normalise(frames, config)
        if rng is not None:
            if flip_p > 0 and rng.random() < flip_p:
                frames = flip_lr(frames)
            if widths_p > 0 and rng.random() < widths_p:
                frames = vary_widths(frames, rng)
            frames = joint_dropout(frames, dropout_p, rng)
        frames[~mask] = 0.0
        batch[i] = frames.reshape(config.n_frames, -1)
        masks[i] = mask
    return batch, masks
