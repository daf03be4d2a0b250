"""Measured gait descriptors: what the skeleton shows, from the keypoints alone, no learning.

:func:`measure` turns one OpenPose-18 sequence ``(T, 18, 3)`` (x, y pixels, y down,
confidence) into :data:`DESCRIPTORS`: ground speed, cadence, relative stride, arm swing,
trunk lean, head pitch, foot clearance, vertical bounce, lateral sway and step asymmetry.
NaN means "this view or this clip cannot tell", never a guess.

How (docs/descriptors.md explains each step and has the validation):

- **Clean-up.** Joints below :data:`MIN_CONFIDENCE` (or NaN) are missing; each joint's gaps
  are filled by linear interpolation in time. A clip stored with y up is flipped; a
  pose estimator's left/right swaps are undone frame by frame (:func:`_lateral_order`,
  :func:`_relabel`).
- **Body height** per frame is the neck-to-lower-ankle extent divided by
  :data:`NECK_TO_ANKLE`; ``1 / height`` is fitted as a straight line in time (exact for a
  walker approaching a pinhole camera at constant speed), so every length is in body heights
  of the same frame.
- **View.** Shoulder and hip widths over body height estimate ``|cos(azimuth)|`` of the
  camera around the direction of travel; the lateral travel per stride settles doubtful
  cases. Fore-aft quantities are divided by ``sin(azimuth)``, lateral ones by
  ``cos(azimuth)``; :data:`VIEW_MEASURABLE` lists what each view gives, the rest is NaN.
- **Cadence** is the frequency of the left-minus-right ankle and knee separation (the
  stride frequency, visible in every view), found by least-squares sinusoid fits over a
  frequency grid to the separation and to its swap-blind square; weak periodicity, a frozen
  skeleton or under 1.5 gait cycles (1.2 with a strong periodicity) give NaN.
- **Gait-cycle amplitudes** (arm swing, foot clearance, bounce, sway, asymmetry) come from a
  fit of 4 harmonics of that frequency plus a quadratic trend to each signal: a low-pass at
  the gait's own harmonics that ignores detector jitter and perspective drift.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from gaitsearch.model.skeleton import J

DESCRIPTORS: tuple[str, ...] = (
    "speed", "cadence", "stride", "arm_swing", "arm_swing_r", "arm_swing_l", "trunk_lean",
    "head_pitch", "foot_clearance", "bounce", "sway", "step_asymmetry",
)  # fmt: skip

UNITS: dict[str, str] = {
    "speed": "body heights/s",
    "cadence": "steps/min",
    "stride": "body heights",
    "arm_swing": "body heights",
    "arm_swing_r": "body heights",
    "arm_swing_l": "body heights",
    "trunk_lean": "deg",
    "head_pitch": "deg",
    "foot_clearance": "body heights",
    "bounce": "body heights",
    "sway": "body heights",
    "step_asymmetry": "ratio",
}

ABOUT: dict[str, str] = {
    "speed": "ground speed: pelvis travel across the image per second, in body heights",
    "cadence": "steps per minute, from the periodicity of the ankle separation",
    "stride": "stride length (two steps) over body height: speed / stride frequency",
    "arm_swing": "wrist fore-aft swing amplitude (half peak-to-peak) over body height, "
    "mean of both arms",
    "arm_swing_r": "right wrist fore-aft swing amplitude over body height",
    "arm_swing_l": "left wrist fore-aft swing amplitude over body height",
    "trunk_lean": "forward lean of the neck-over-pelvis line from vertical, degrees",
    "head_pitch": "head pitched down relative to the trunk, degrees (0 = neutral)",
    "foot_clearance": "ankle vertical excursion over the cycle (swing lift) over body height",
    "bounce": "pelvis vertical excursion (peak-to-peak) over body height",
    "sway": "pelvis lateral excursion (peak-to-peak) over body height",
    "step_asymmetry": "left-right difference of step timing or leg excursion, relative to "
    "their mean (0 = symmetric)",
}

VIEW_MEASURABLE: dict[str, tuple[str, ...]] = {
    "side": ("speed", "cadence", "stride", "arm_swing", "arm_swing_r", "arm_swing_l",
             "trunk_lean", "head_pitch", "foot_clearance", "bounce", "step_asymmetry"),
    "oblique": DESCRIPTORS,
    "frontal": ("cadence", "bounce", "sway", "step_asymmetry"),
}  # fmt: skip

MIN_CONFIDENCE = 0.1
NECK_TO_ANKLE = 0.778  # neck height above the lower ankle, fraction of stature
NECK_TO_KNEE = 0.544  # ... above the lower knee, when the feet are out of the picture
SHOULDER_WIDTH = 0.137  # shoulder-to-shoulder distance seen from the front, of stature
HIP_WIDTH = 0.063  # hip-to-hip distance seen from the front, of stature
FRONTAL_COS, SIDE_COS = 0.9, 0.45  # view classes by the |cos(azimuth)| estimate
# ... refined by the lateral travel per stride (body heights): see _view_class
FRONTAL_TRAVEL, FRONTAL_COS_TRAVEL, OBLIQUE_TRAVEL = 0.2, 0.7, 0.45
MAX_TAN_ELEVATION = 1.0  # cameras up to 45 degrees above the walker
OBLIQUE_MAX_COS = 0.8  # |cos(azimuth)| of a walker classed oblique is taken as at most this
HEAD_OFFSET_DEG = 30.5  # neck-to-nose line ahead of the trunk axis with the head neutral
MIN_FRAMES = 16
MAX_FRAMES = 300  # longer clips are measured on their middle 300 frames (10-12 s)
FRAME_QUANTUM = 16  # clips are measured on their middle multiple of this many frames
MIN_CYCLES = 1.5  # gait cycles a clip needs for the cycle descriptors (fewer: octave errors)
# ... unless its periodicity is strong: from MIN_SHORT_CYCLES up, a clip whose stride sinusoid
# scores at least MIN_SHORT_PERIODICITY is kept (a slow walk in a 2-s window: see docs)
MIN_SHORT_CYCLES, MIN_SHORT_PERIODICITY = 1.2, 200.0
MIN_ANKLE_SWING = 0.015  # ankle fundamental (body heights) below which asymmetry is NaN
FULL_ANKLE_SWING = 0.05  # ... and below which its ratios are weighed down
MIN_FPS = 8.0  # below it the step frequency (up to 3.6 Hz) aliases: no cycle descriptors
MIN_PERIODICITY = 16.0  # F statistic of the stride sinusoid (see _stride_frequency)
MIN_SEPARATION = 0.008  # sinusoid amplitude of the separation, body heights
MIN_FACTOR = 0.5  # sin/cos of the azimuth below which a projected quantity is NaN
HARMONICS = 4
RELABEL_PASSES = 3
SWAP_RATIO = 0.7  # crossed over straight residual below which a frame is relabelled
STRIDE_HZ = (0.4, 1.8)  # stride frequencies searched (cadence 48-216 steps/min)
_GRID_STEP_HZ = 0.01
_INDEX = {name: i for i, name in enumerate(DESCRIPTORS)}

_NECK, _NOSE = J["neck"], J["nose"]
_RS, _LS, _RW, _LW = J["r_shoulder"], J["l_shoulder"], J["r_wrist"], J["l_wrist"]
_RH, _LH, _RK, _LK = J["r_hip"], J["l_hip"], J["r_knee"], J["l_knee"]
_RA, _LA = J["r_ankle"], J["l_ankle"]
_LIMBS = (  # (right chain, left chain): hip, knee, ankle; shoulder, elbow, wrist
    ([_RH, _RK, _RA], [_LH, _LK, _LA]),
    ([_RS, J["r_elbow"], _RW], [_LS, J["l_elbow"], _LW]),
)


def _fill(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``x`` (T, ...) over time where ``valid`` is False.

    Ends take the nearest valid value; a column never valid stays NaN. Only the columns with
    a gap are computed (the others are returned as they are, which the interpolation would
    give exactly: most joints of a walk are seen in every frame).
    """
    t = x.shape[0]
    valid = np.broadcast_to(valid, x.shape)
    flat_x = x.reshape(t, -1)
    flat_v = valid.reshape(t, -1)
    gaps = np.nonzero(~flat_v.all(axis=0))[0]
    if gaps.size == 0:
        return x.copy()
    xs, vs = flat_x[:, gaps], flat_v[:, gaps]
    idx = np.arange(t)[:, None]
    prev = np.maximum.accumulate(np.where(vs, idx, -1), axis=0)
    nxt = np.minimum.accumulate(np.where(vs, idx, t)[::-1], axis=0)[::-1]
    lo = np.where(prev >= 0, prev, nxt)
    hi = np.where(nxt < t, nxt, prev)
    never = lo >= t
    lo, hi = np.clip(lo, 0, t - 1), np.clip(hi, 0, t - 1)
    cols = np.arange(len(gaps))[None, :]
    xl, xh = xs[lo, cols], xs[hi, cols]
    w = np.where(hi > lo, (idx - lo) / np.maximum(hi - lo, 1), 0.0)
    out = flat_x.copy()
    out[:, gaps] = np.where(never, np.nan, xl + (xh - xl) * w)
    return out.reshape(x.shape)


@lru_cache(maxsize=64)  # at most 64 x 2 x 141 x 300 floats: about 40 MB
def _grid(n: int, fps: float, harmonic: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stride frequencies (F,), bases (F * 2, T) of sinusoids at ``harmonic`` times each,
    and their inverse Gram matrices (F, 2, 2)."""
    freqs = np.arange(STRIDE_HZ[0], STRIDE_HZ[1] + 1e-9, _GRID_STEP_HZ)
    t = np.arange(n) / fps
    ang = 2 * np.pi * harmonic * freqs[:, None] * t[None, :]
    basis = np.stack([np.cos(ang), np.sin(ang)], axis=1)  # (F, 2, T)
    basis -= basis.mean(axis=2, keepdims=True)
    gram = basis @ basis.transpose(0, 2, 1) + np.eye(2) * 1e-9
    return freqs, np.ascontiguousarray(basis.reshape(-1, n)), np.linalg.inv(gram)


@lru_cache(maxsize=64)
def _trend(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadratic trend basis (T, 3) and its pseudo-inverse (3, T)."""
    tau = np.linspace(-1.0, 1.0, n)
    v = np.stack([np.ones(n), tau, tau * tau - 1.0 / 3.0], axis=1)
    return v, np.linalg.pinv(v)


def _detrend(y: np.ndarray) -> np.ndarray:
    """Remove a quadratic trend from each column of ``y`` (T, K)."""
    v, pinv = _trend(y.shape[0])
    return np.asarray(y - v @ (pinv @ y))


def _explained(y: np.ndarray, fps: float, harmonic: int) -> tuple[np.ndarray, np.ndarray]:
    """Per grid frequency: fraction of the variance of ``y`` (T, K) explained by a sinusoid
    at ``harmonic`` times it, and the power itself."""
    n, k_sig = y.shape
    total = float((y * y).sum())
    freqs, basis, ginv = _grid(n, float(fps), harmonic)
    if not np.isfinite(total) or total <= 1e-18:
        return np.zeros(len(freqs)), np.zeros(len(freqs))
    r = (basis @ y).reshape(len(freqs), 2, k_sig)
    power = (np.matmul(ginv, r) * r).sum(axis=(1, 2))
    return power / total, power


def _stride_frequency(sep: np.ndarray, fps: float) -> tuple[float, float, float]:
    """(stride Hz, F statistic, amplitude) of the periodicity of ``sep`` (T, K).

    Two views of the left-right separation vote: the separation itself oscillates once per
    stride, and its square once per step. The square does not change when a pose estimator
    swaps left and right (which flips the separation's sign for a few frames and can throw
    the plain fit onto a wrong frequency); the plain separation has no component at half or
    twice the stride frequency (which the square may have, from an uneven gait). The sum of
    the two explained fractions peaks at the stride frequency.

    The statistic is the mean explained over the unexplained variance of the two, times the
    number of frames: below 16 for a standing person's detector jitter, far above for
    walking, whatever the clip length. The amplitude is the mean sinusoid amplitude of the
    separation per signal, in the signal's unit.
    """
    d = _detrend(sep)
    n, k_sig = d.shape
    if not np.isfinite(d).all() or float((d * d).sum()) <= 1e-18:
        return float("nan"), 0.0, 0.0
    e1, power = _explained(d, fps, 1)
    # Only signals that swing about zero: the square of one with a large offset (the step
    # width seen from the front) carries the stride frequency itself, not twice it.
    centred = np.abs(sep.mean(axis=0)) < d.std(axis=0)
    e2 = np.zeros_like(e1)
    if centred.any():
        e2, _ = _explained(_detrend(sep[:, centred] ** 2), fps, 2)
    score = e1 + e2
    freqs = _grid(n, float(fps))[0]
    k = int(np.argmax(score))
    explained = float(min(score[k] / 2.0, 1.0 - 1e-9))
    amplitude = float(np.sqrt(2.0 * power[k] / (n * k_sig)))
    stat = explained / (1.0 - explained) * n
    if k == 0 or k == len(freqs) - 1:
        # A peak at the edge of the search range is no gait frequency (or a clip too short
        # to resolve one).
        return float("nan"), stat, amplitude
    a, b, c = score[k - 1], score[k], score[k + 1]
    den = a - 2 * b + c
    offset = float(np.clip(0.5 * (a - c) / den, -0.5, 0.5)) if den < 0 else 0.0
    return float(freqs[k] + offset * _GRID_STEP_HZ), stat, amplitude


@lru_cache(maxsize=8)
def _harmonic_design(n: int, fps: float, f: float) -> tuple[np.ndarray, np.ndarray]:
    """The basis (T, 3 + 2 * HARMONICS) (a quadratic trend, then cos and sin at k * f) and
    its regularised Gram matrix; a walk's relabelling and its harmonic fit share them."""
    t = np.arange(n) / fps
    tau = np.linspace(-1.0, 1.0, n)
    k = np.arange(1, HARMONICS + 1)
    ang = 2 * np.pi * f * t[:, None] * k[None, :]
    cols = [np.ones(n)[:, None], tau[:, None], (tau * tau)[:, None], np.cos(ang), np.sin(ang)]
    basis = np.concatenate(cols, axis=1)
    return basis, basis.T @ basis + np.eye(basis.shape[1]) * 1e-9


def _harmonic_fit(y: np.ndarray, fps: float, f: float, debias: bool = False) -> np.ndarray:
    """Coefficients (2 * HARMONICS, K) of cos/sin at k * f after a quadratic trend.

    ``debias`` shrinks each harmonic's amplitude by what the fit's residual noise adds to
    it on average (``A^2 - 4 sigma^2 / T``), so jitter does not read as motion.
    """
    n = y.shape[0]
    basis, gram = _harmonic_design(n, fps, f)
    coef = np.linalg.solve(gram, basis.T @ y)
    out = np.asarray(coef[3:])
    if debias and n > basis.shape[1]:
        resid = y - basis @ coef
        var = (resid * resid).sum(axis=0) / (n - basis.shape[1])
        a, b = out[:HARMONICS], out[HARMONICS:]
        amp2 = a * a + b * b
        keep = np.sqrt(np.clip(1.0 - 4.0 * var / n / np.maximum(amp2, 1e-18), 0.0, 1.0))
        out = np.concatenate([a * keep, b * keep])
    return out


_PHASE = np.linspace(0.0, 2 * np.pi, 96, endpoint=False)
_K = np.arange(1, HARMONICS + 1)
_WAVE = np.concatenate([np.cos(_PHASE[:, None] * _K), np.sin(_PHASE[:, None] * _K)], axis=1)


def _excursion(coef: np.ndarray, harmonics: Sequence[int] | None = None) -> np.ndarray:
    """Peak-to-peak of the periodic waveform of each column of ``coef`` over one cycle."""
    c = coef
    if harmonics is not None:
        keep = np.zeros(HARMONICS, dtype=bool)
        keep[[h - 1 for h in harmonics]] = True
        c = coef * np.concatenate([keep, keep])[:, None]
    wave = _WAVE @ c
    return np.asarray(wave.max(axis=0) - wave.min(axis=0))


def _sorted_median(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Median along ``axis`` by a sort: exact, and ten times faster than ``np.median`` on
    arrays of a clip's length (it is called a dozen times per walk)."""
    s = np.sort(x, axis=axis)
    n = s.shape[axis]
    # (lo + hi) / 2: what the mean of the two middle values computes, without its overhead.
    return np.asarray((np.take(s, (n - 1) // 2, axis=axis) + np.take(s, n // 2, axis=axis)) / 2)


def _median(x: np.ndarray) -> float:
    """Median ignoring NaN (NaN when nothing is finite)."""
    x = np.asarray(x).reshape(-1)
    finite = np.isfinite(x)
    if not finite.all():
        x = x[finite]
    return float(_sorted_median(x)) if x.size else float("nan")


def _mean(values: Sequence[float]) -> float:
    """Mean of the finite values; NaN when there is none."""
    kept = [v for v in values if np.isfinite(v)]
    return float(sum(kept) / len(kept)) if kept else float("nan")


def _angle_deg(dx: np.ndarray, up: np.ndarray) -> np.ndarray:
    return np.asarray(np.degrees(np.arctan2(dx, up)))


def measured_frames(arr: np.ndarray) -> np.ndarray:
    """The frames of ``arr`` (T, ...) a clip is measured on (``_prepare`` and the batched
    path of :mod:`gaitsearch.model.descriptors_batch` both cut them here)."""
    if arr.shape[0] > MAX_FRAMES:  # a long tracklet: its middle is plenty of gait cycles
        start = (arr.shape[0] - MAX_FRAMES) // 2
        arr = arr[start : start + MAX_FRAMES]
    if arr.shape[0] >= MIN_FRAMES + FRAME_QUANTUM:
        # The middle multiple of FRAME_QUANTUM frames: clips of similar lengths share the
        # cached sinusoid bases (a gallery's varied lengths otherwise miss the cache on
        # almost every walk: 3.7 -> 1.9 ms of CPU per synthetic walk, measured).
        keep = arr.shape[0] - arr.shape[0] % FRAME_QUANTUM
        start = (arr.shape[0] - keep) // 2
        arr = arr[start : start + keep]
    return arr


def _prepare(keypoints: np.ndarray) -> np.ndarray | None:
    """Filled pixel coordinates (T, 18, 2), y down, NaN for joints never seen."""
    arr = np.asarray(keypoints, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1] != 18 or arr.shape[2] < 2:
        raise ValueError(f"expected (T, 18, 3) keypoints, got shape {arr.shape}")
    arr = measured_frames(arr)
    xy = arr[..., :2]
    conf = arr[..., 2] if arr.shape[2] > 2 else np.ones(arr.shape[:2])
    valid = (conf >= MIN_CONFIDENCE) & np.isfinite(xy).all(-1) & np.isfinite(conf)
    if arr.shape[0] < MIN_FRAMES or not valid.any():
        return None
    xy = np.where(valid[..., None], xy, np.nan)
    # y up (some stored copies): the neck and shoulders would be below the knees and ankles.
    ys = np.where(valid, arr[..., 1], 0.0)
    lower, upper = [_RA, _LA, _RK, _LK], [_NECK, _NOSE, _RS, _LS]
    n_low, n_up = valid[:, lower].sum(), valid[:, upper].sum()
    if n_low and n_up and ys[:, lower].sum() / n_low < ys[:, upper].sum() / n_up:
        xy[..., 1] = -xy[..., 1]
    return _lateral_order(_fill(xy, valid[..., None]))


def _lateral_order(xy: np.ndarray) -> np.ndarray:
    """Undo left/right swaps where the view shows which side each limb is on.

    Seen from the front, back or obliquely, the right hip, knee and ankle stay on one side of
    the left ones in the image (and the right shoulder, elbow, wrist of the left ones); a
    frame where most of them are on the other side was swapped by the pose estimator. In
    profile there is no such order (the offsets are near zero) and nothing changes.
    """
    rights = [j for right, _ in _LIMBS for j in right]
    lefts = [j for _, left in _LIMBS for j in left]
    dx = xy[:, rights, 0] - xy[:, lefts, 0]  # (T, 6): legs then arms
    med = _sorted_median(dx)
    spread = _sorted_median(np.abs(dx - med)) * 1.4826 + 1e-9
    ordered = (np.abs(med) > 2.0 * spread) & np.isfinite(med)
    if not ordered.any():
        return xy
    against = (np.sign(dx) != np.sign(med)) & (np.abs(dx) > 0.5 * np.abs(med)) & ordered
    out = xy
    for p, (right, left) in enumerate(_LIMBS):
        cols = slice(3 * p, 3 * p + 3)
        swap = against[:, cols].sum(axis=1) * 2 > ordered[cols].sum()
        if ordered[cols].any() and swap.any():
            if out is xy:
                out = xy.copy()
            idx = np.nonzero(swap)[0]
            out[np.ix_(idx, right + left)] = xy[np.ix_(idx, left + right)]
    return out


def _relabel(u: np.ndarray, fps: float, f: float) -> tuple[np.ndarray, int]:
    """Undo a pose estimator's left/right swaps of the legs and arms; (u, frames fixed).

    Both chains of a limb pair are fitted with the gait harmonics; a frame whose crossed
    labels fit that model clearly better than its own is swapped back. Each frame is decided
    on its own, so a wrong call costs one frame, not the rest of the clip; at the moment the
    legs cross, either labelling fits and nothing changes.
    """
    basis, gram = _harmonic_design(u.shape[0], fps, f)
    pairs = []
    for right, left in _LIMBS:
        r = u[:, right].reshape(len(u), -1)
        lft = u[:, left].reshape(len(u), -1)
        if np.isfinite(r).all() and np.isfinite(lft).all():
            pairs.append((right, left, r, lft))
    if not pairs:
        return u, 0
    # Screen: one plain fit of every chain; most clips have no frame to relabel.
    chains = np.concatenate([np.concatenate([r, lft], axis=1) for *_, r, lft in pairs], axis=1)
    model = basis @ np.linalg.solve(gram, basis.T @ chains)
    suspect, col = False, 0
    for *_, r, lft in pairs:
        k = r.shape[1]
        mr, ml = model[:, col : col + k], model[:, col + k : col + 2 * k]
        straight = np.abs(r - mr).sum(1) + np.abs(lft - ml).sum(1)
        cross = np.abs(lft - mr).sum(1) + np.abs(r - ml).sum(1)
        suspect = suspect or bool((cross < SWAP_RATIO * straight).any())
        col += 2 * k
    if not suspect:
        return u, 0
    out, fixed = u, 0
    for right, left, r, lft in pairs:
        k = r.shape[1]
        swap = np.zeros(len(u), dtype=bool)
        weight = np.ones(len(u))
        for _ in range(RELABEL_PASSES):
            # Fit the model to the current labelling, frames that fit badly weighed down.
            cr = np.where(swap[:, None], lft, r)
            cl = np.where(swap[:, None], r, lft)
            wb = basis * weight[:, None]
            gram = wb.T @ basis + np.eye(basis.shape[1]) * 1e-9
            model = basis @ np.linalg.solve(gram, wb.T @ np.concatenate([cr, cl], axis=1))
            mr, ml = model[:, :k], model[:, k:]
            straight = np.abs(r - mr).sum(1) + np.abs(lft - ml).sum(1)
            cross = np.abs(lft - mr).sum(1) + np.abs(r - ml).sum(1)
            new = cross < SWAP_RATIO * straight
            best = np.minimum(straight, cross)
            weight = 1.0 / (1.0 + (best / (float(_sorted_median(best)) + 1e-9)) ** 2)
            if (new == swap).all():
                break
            swap = new
        if swap.any():
            if out is u:
                out = u.copy()
            idx = np.nonzero(swap)[0]
            out[np.ix_(idx, right + left)] = u[np.ix_(idx, left + right)]
            fixed += len(idx)
    return out, fixed


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Intercept and slope of the least-squares line through (x, y)."""
    xm, ym = x.sum() / x.size, y.sum() / y.size  # = x.mean(), y.mean(), exactly
    var = float(((x - xm) ** 2).sum())
    slope = float(((x - xm) * (y - ym)).sum() / var) if var > 0 else 0.0
    return float(ym - slope * xm), slope


def _body_height(xy: np.ndarray) -> np.ndarray | None:
    """Per-frame body height (T,) in pixels, smoothed as 1/h linear in time."""
    top = xy[:, _NECK, 1]
    if not np.isfinite(top).any():  # the pose estimator's neck is the shoulders' midpoint
        top = 0.5 * (xy[:, _RS, 1] + xy[:, _LS, 1])
    feet, ratio = [_RA, _LA], NECK_TO_ANKLE
    if not np.isfinite(xy[:, feet, 1]).any():  # feet out of the picture: the knees
        feet, ratio = [_RK, _LK], NECK_TO_KNEE
    with np.errstate(all="ignore"):
        bottom = np.nanmax(xy[:, feet, 1], axis=1)
    h = (bottom - top) / ratio
    ok = np.isfinite(h) & (h > 1e-3)
    if ok.sum() < MIN_FRAMES // 2:
        return None
    t = np.arange(len(h), dtype=np.float64)
    inv = 1.0 / h[ok]
    a, b = _line(t[ok], inv)
    # One robust pass: drop frames more than 3 median deviations away.
    res = inv - (a + b * t[ok])
    mad = float(_sorted_median(np.abs(res))) + 1e-12
    keep = np.abs(res) < 3.0 * 1.4826 * mad + 1e-9
    if keep.sum() >= MIN_FRAMES // 2:
        a, b = _line(t[ok][keep], inv[keep])
    fitted = a + b * t
    if not (fitted > 0).all():
        return np.full(len(h), float(_sorted_median(h[ok])))
    return np.asarray(1.0 / fitted)


def _azimuth_cos(xy: np.ndarray, h: np.ndarray) -> float:
    """|cos| of the camera azimuth around the direction of travel, from shoulder width."""
    with np.errstate(all="ignore"):
        sw = _median(np.abs(xy[:, _RS, 0] - xy[:, _LS, 0]) / h)
        hw = _median(np.abs(xy[:, _RH, 0] - xy[:, _LH, 0]) / h)
    # Shoulders and hips vary from person to person partly independently: average them.
    c = _mean([sw / SHOULDER_WIDTH, hw / HIP_WIDTH])
    return float(np.clip(c, 0.0, 1.0)) if np.isfinite(c) else float("nan")


def _elevation_cos(xy: np.ndarray, h: np.ndarray, travel: float, sin_az: float) -> float:
    """cos of the camera's elevation above the walker, from the near shoulder and hip.

    A camera that looks down sees the walker's near shoulder (and hip) lower in the image
    than the far one by ``width * sin(azimuth) * tan(elevation)`` body heights, while it
    shortens every vertical length by ``cos(elevation)``. The near side is the one the
    walker's travel across the image shows (moving right: the right side faces the camera).
    """
    if not np.isfinite(travel) or travel == 0.0 or sin_az < MIN_FACTOR:
        return 1.0
    sign = 1.0 if travel > 0 else -1.0
    drop = [
        _median(sign * (xy[:, _RS, 1] - xy[:, _LS, 1]) / h) / SHOULDER_WIDTH,
        _median(sign * (xy[:, _RH, 1] - xy[:, _LH, 1]) / h) / HIP_WIDTH,
    ]
    tan_el = _mean(drop) / sin_az
    if not np.isfinite(tan_el):
        return 1.0
    tan_el = float(np.clip(tan_el, 0.0, MAX_TAN_ELEVATION))
    return float(1.0 / np.sqrt(1.0 + tan_el * tan_el))


def _view_class(c: float, per_stride: float) -> str:
    """The view from ``|cos(azimuth)|`` and the lateral travel per stride (body heights).

    Widths alone confuse some oblique walkers with frontal ones (people differ in width);
    a walker seen from the front or back hardly crosses the image (under 0.2 body heights
    per stride), one seen obliquely crosses 0.3-1.
    """
    if not np.isfinite(c):
        return "oblique"
    if c <= SIDE_COS:
        return "side"
    if np.isfinite(per_stride):
        if per_stride < FRONTAL_TRAVEL and c >= FRONTAL_COS_TRAVEL:
            return "frontal"
        if per_stride >= OBLIQUE_TRAVEL:
            return "oblique"
    return "frontal" if c >= FRONTAL_COS else "oblique"


def _cadence_of(u: np.ndarray, fps: float) -> tuple[float, float, float]:
    sep = np.concatenate([u[:, _RA] - u[:, _LA], u[:, _RK] - u[:, _LK]], axis=1)
    sep = sep[:, np.isfinite(sep).all(axis=0)]
    if sep.shape[1] == 0:
        return float("nan"), 0.0, 0.0
    return _stride_frequency(sep, fps)


@dataclass
class _Walk:
    """What :func:`measure` and :func:`view_of` share about one sequence."""

    xy: np.ndarray  # (T, 18, 2) pixels, filled
    h: np.ndarray  # (T,) body height, pixels
    u: np.ndarray  # (T, 18, 2) body heights, left/right swaps undone
    pelvis: np.ndarray  # (T, 2) pixels
    t: np.ndarray  # (T,) seconds
    cos_az: float
    travel: float  # signed lateral travel, body heights per second
    f: float  # stride frequency, Hz; NaN when the clip shows no gait cycle
    view: str


def _analyse(keypoints: np.ndarray, fps: float) -> _Walk | None:
    xy = _prepare(keypoints)
    if xy is None:
        return None
    h = _body_height(xy)
    if h is None:
        return None
    n = xy.shape[0]
    u = xy / h[:, None, None]  # body heights of the frame
    cos_az = _azimuth_cos(xy, h)

    hips = xy[:, [_RH, _LH]]
    pelvis = hips.mean(axis=1) if np.isfinite(hips).all() else np.nanmean(hips, axis=1)
    if not np.isfinite(pelvis).all():
        pelvis = xy[:, _NECK]
    # Travel across the image: integrate du / h (h changes as the walker approaches).
    du = np.diff(pelvis[:, 0]) * 0.5 * (1.0 / h[1:] + 1.0 / h[:-1])
    s = np.concatenate([[0.0], np.cumsum(du)])
    t = np.arange(n) / fps
    travel = _line(t, s)[1] if np.isfinite(s).all() else float("nan")

    # Cadence from the left-right separation of ankles and knees; once more after undoing
    # the detector's left/right swaps that the first estimate reveals.
    f, periodicity, amplitude = _cadence_of(u, fps)
    if np.isfinite(f):
        u, fixed = _relabel(u, fps, f)
        if fixed:
            f, periodicity, amplitude = _cadence_of(u, fps)
    if (
        not np.isfinite(f)
        or fps < MIN_FPS
        or periodicity < MIN_PERIODICITY
        or amplitude < MIN_SEPARATION
        or not enough_cycles(f * t[-1], periodicity)
    ):
        f = float("nan")
    view = _view_class(cos_az, abs(travel) / f if np.isfinite(f) else float("nan"))
    return _Walk(xy, h, u, pelvis, t, cos_az, travel, f, view)


def enough_cycles(cycles: Any, periodicity: Any) -> Any:
    """Whether a clip holds enough gait cycles for the cycle descriptors (arrays or scalars):
    :data:`MIN_CYCLES`, or :data:`MIN_SHORT_CYCLES` with a periodicity of at least
    :data:`MIN_SHORT_PERIODICITY`. On synthetic 40-56-frame clips (detector, noisy and swapped
    variants) the cadences kept between 1.2 and 1.5 cycles this way are off by over 10
    steps/min in 1.8% of clips, against 6.4% for those kept at 1.5 cycles or more."""
    return (cycles >= MIN_CYCLES) | (
        (cycles >= MIN_SHORT_CYCLES) & (periodicity >= MIN_SHORT_PERIODICITY)
    )


def view_of(keypoints: np.ndarray, fps: float = 25.0) -> str:
    """``"side"``, ``"frontal"`` (front or back) or ``"oblique"``, from the geometry: body
    widths against height and how far the walker crosses the image per stride (``fps``
    only bounds the stride frequencies searched)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with np.errstate(all="ignore"):
            walk = _analyse(keypoints, float(fps))
    return "oblique" if walk is None else walk.view


def measure(keypoints: np.ndarray, fps: float) -> np.ndarray:
    """The descriptors of one sequence, ``(len(DESCRIPTORS),)`` float32; NaN = not measurable."""
    with warnings.catch_warnings():
        # Joints never seen make all-NaN medians: NaN is the answer, not a warning per walk.
        warnings.simplefilter("ignore", RuntimeWarning)
        with np.errstate(all="ignore"):
            return _measure(keypoints, fps)


def _measure(keypoints: np.ndarray, fps: float) -> np.ndarray:
    out = np.full(len(DESCRIPTORS), np.nan, dtype=np.float32)
    fps = float(fps)
    if not np.isfinite(fps) or fps <= 0:
        return out
    walk = _analyse(keypoints, fps)
    if walk is None:
        return out
    xy, h, u, pelvis, t = walk.xy, walk.h, walk.u, walk.pelvis, walk.t
    travel, f, view = walk.travel, walk.f, walk.view
    cos_az = walk.cos_az if np.isfinite(walk.cos_az) else float(np.cos(np.pi / 4))
    if view == "oblique":
        # Crossing the image as an oblique walker does, yet as wide as seen from the front:
        # a broad person; their azimuth is nearer the oblique views' than the widths say.
        cos_az = min(cos_az, OBLIQUE_MAX_COS)
    sin_az = float(np.sqrt(max(1.0 - cos_az * cos_az, 0.0)))
    lateral_ok = view != "frontal" and sin_az >= MIN_FACTOR
    frontal_ok = view != "side" and cos_az >= MIN_FACTOR

    # Horizontal lengths over a height the camera's elevation shortened: scale them back.
    cos_el = _elevation_cos(xy, h, travel, sin_az) if lateral_ok else 1.0
    direction = np.sign(travel) if np.isfinite(travel) and travel != 0 else 0.0
    if direction == 0.0 or abs(travel) * t[-1] < 0.05:
        # Barely translating: the face says which way is forward.
        nose_ahead = _median(xy[:, _NOSE, 0] - xy[:, _NECK, 0])
        direction = float(np.sign(nose_ahead)) if np.isfinite(nose_ahead) else 0.0

    speed = float("nan")
    if lateral_ok and np.isfinite(travel) and abs(travel) * t[-1] >= 0.25:
        speed = abs(travel) / sin_az * cos_el
        out[_INDEX["speed"]] = speed

    # Posture: median angles of the trunk and of the neck-to-nose line (forward positive).
    if lateral_ok and direction != 0.0:
        trunk = pelvis - xy[:, _NECK]  # points down
        tx, ty = direction * -trunk[:, 0], trunk[:, 1]
        lean = _median(_angle_deg(tx / sin_az, ty / cos_el))
        out[_INDEX["trunk_lean"]] = lean
        head = xy[:, _NOSE] - xy[:, _NECK]
        hx, hy = direction * head[:, 0], -head[:, 1]
        head_abs = _median(_angle_deg(hx / sin_az, hy / cos_el))
        out[_INDEX["head_pitch"]] = head_abs - lean - HEAD_OFFSET_DEG

    if not np.isfinite(f):
        return out
    out[_INDEX["cadence"]] = 120.0 * f
    if np.isfinite(speed):
        out[_INDEX["stride"]] = speed / f

    # Gait-cycle amplitudes: harmonics of the stride frequency.
    pel = pelvis / h[:, None]
    signals = np.stack(
        [
            pel[:, 0],
            pel[:, 1],
            u[:, _RW, 0] - u[:, _RS, 0],
            u[:, _LW, 0] - u[:, _LS, 0],
            u[:, _RA, 1],
            u[:, _LA, 1],
            # The ankles' own x (not about the pelvis, whose lateral sway is common to both
            # legs at the stride frequency) and their height about the pelvis.
            u[:, _RA, 0],
            u[:, _RA, 1] - pel[:, 1],
            u[:, _LA, 0],
            u[:, _LA, 1] - pel[:, 1],
        ],
        axis=1,
    )
    finite = np.isfinite(signals).all(axis=0)
    coef = np.full((2 * HARMONICS, signals.shape[1]), np.nan)
    if finite.any():
        coef[:, finite] = _harmonic_fit(signals[:, finite], fps, f, debias=True)
    exc = _excursion(coef)
    if frontal_ok:
        out[_INDEX["sway"]] = _excursion(coef[:, :1], (1, 3))[0] / cos_az
    # From the side or obliquely a camera looking down also sees the pelvis' lateral sway
    # (once per stride) in its height: keep the once-per-step harmonics there.
    out[_INDEX["bounce"]] = exc[1] if view == "frontal" else _excursion(coef[:, 1:2], (2, 4))[0]
    if lateral_ok:
        arms = exc[2:4] / 2.0 / sin_az * cos_el
        out[_INDEX["arm_swing_r"]], out[_INDEX["arm_swing_l"]] = arms
        if np.isfinite(arms).any():
            out[_INDEX["arm_swing"]] = _mean(arms.tolist())
        # Seen from above at an angle, a foot moving toward the camera also moves down the
        # image: remove the part of its vertical motion that follows its fore-aft motion
        # (in profile there is none to remove; fitting it there would eat real lift).
        wave = _WAVE @ coef[:, 4:10]
        lifts = []
        for y, x in ((wave[:, 0], wave[:, 2]), (wave[:, 1], wave[:, 4])):
            a = float(x @ y) / max(float(x @ x), 1e-12)
            lifted = y - a * x if view == "oblique" else y
            lifts.append(float(lifted.max() - lifted.min()))
        out[_INDEX["foot_clearance"]] = _mean(lifts)
    # Asymmetry: each ankle's fundamental, amplitude and relative phase.
    zr = coef[0, 6:8] + 1j * coef[HARMONICS, 6:8]
    zl = coef[0, 8:10] + 1j * coef[HARMONICS, 8:10]
    if np.isfinite(zr).all() and np.isfinite(zl).all():
        ar, al = np.sqrt((np.abs(zr) ** 2).sum()), np.sqrt((np.abs(zl) ** 2).sum())
        mean = 0.5 * (ar + al)
        # Under a few centimetres of ankle swing (shuffling, or depth seen from the front)
        # detector jitter would dominate both ratios: weigh them down, or give up.
        if mean >= MIN_ANKLE_SWING:
            trust = min(1.0, mean / FULL_ANKLE_SWING)
            amp = abs(ar - al) / max(mean, FULL_ANKLE_SWING)
            lag = np.angle((zr * np.conj(zl)).sum())  # pi when the legs alternate evenly
            timing = trust * 4.0 * abs(abs(lag) - np.pi) / (2 * np.pi)
            out[_INDEX["step_asymmetry"]] = max(amp, timing)
    return out


def measure_many(sequences: Sequence[np.ndarray], fps: Sequence[float] | float) -> np.ndarray:
    """``(n, len(DESCRIPTORS))`` float32 descriptors of many sequences: the same values as
    :func:`measure` walk by walk, computed a batch at a time
    (:mod:`gaitsearch.model.descriptors_batch`)."""
    from gaitsearch.model.descriptors_batch import measure_many as batched

    return batched(sequences, fps)
