"""The measured descriptors of many walks at once: :func:`gaitsearch.model.descriptors.measure`
vectorised over a batch.

A gallery is embedded walk by walk, and per walk :func:`~gaitsearch.model.descriptors.measure`
spends most of its time in the overhead of a few hundred small numpy calls (about 1.5 ms of
CPU for a 3-second synthetic walk, most of a reindex). Walks that :mod:`descriptors` measures
on the same number of frames at the same frame rate share every basis, so here they go through
each step together, as arrays ``(B, T, ...)``: the same arithmetic, once per batch instead of
once per walk.

Only the common case takes the batched path: every joint seen at least once, a body height in
every frame, and no frame the harmonic model would relabel as a left/right swap. Anything else
(a joint never seen, feet out of the picture, a pose estimator's swaps, a walk with fewer than
:data:`~descriptors.MIN_FRAMES` frames) is measured by the per-walk code, so both paths answer
alike (``tests/test_descriptors.py`` compares them walk by walk).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from gaitsearch.model import descriptors as D

_IDX = {name: i for i, name in enumerate(D.DESCRIPTORS)}
_RIGHTS = [j for right, _ in D._LIMBS for j in right]
_LEFTS = [j for _, left in D._LIMBS for j in left]
_LOWER = [D._RA, D._LA, D._RK, D._LK]
_UPPER = [D._NECK, D._NOSE, D._RS, D._LS]


def _median(x: np.ndarray) -> np.ndarray:
    """Median over axis 1 (time) of ``(B, T, ...)``, as :func:`descriptors._sorted_median`."""
    return D._sorted_median(x, axis=1)


def _line(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Per row of ``y`` (B, T): intercept and slope of the least-squares line through
    ``(x, y)``, over the frames where ``w`` (B, T, boolean) holds, if given."""
    if w is None:
        xm = x.sum() / x.size
        ym = y.sum(axis=1) / y.shape[1]
        dx = x - xm
        var = float((dx * dx).sum())
        slope = (dx[None, :] * (y - ym[:, None])).sum(axis=1) / var if var > 0 else 0.0 * ym
        return ym - slope * xm, slope
    cnt = w.sum(axis=1)
    xm = (x[None, :] * w).sum(axis=1) / cnt
    ym = np.where(w, y, 0.0).sum(axis=1) / cnt
    dx = np.where(w, x[None, :] - xm[:, None], 0.0)
    var = (dx * dx).sum(axis=1)
    cov = (dx * np.where(w, y - ym[:, None], 0.0)).sum(axis=1)
    slope = np.where(var > 0, cov / np.where(var > 0, var, 1.0), 0.0)
    return ym - slope * xm, slope


def _fill(xy: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """:func:`descriptors._fill` over ``(B, T, 18, 2)`` (a joint never seen, whose walk is
    measured one by one, gets an arbitrary value instead of NaN)."""
    b, t, j = valid.shape
    if valid.all():
        return xy.copy()
    idx = np.arange(t)[None, :, None]
    prev = np.maximum.accumulate(np.where(valid, idx, -1), axis=1)
    nxt = np.minimum.accumulate(np.where(valid, idx, t)[:, ::-1], axis=1)[:, ::-1]
    lo = np.clip(np.where(prev >= 0, prev, nxt), 0, t - 1)
    hi = np.clip(np.where(nxt < t, nxt, prev), 0, t - 1)
    # Rows of the (B * T * 18, 2) coordinates: one gather for each end of every gap.
    base = np.arange(b)[:, None, None] * (t * j) + np.arange(j)[None, None, :]
    flat = xy.reshape(-1, 2)
    xl = np.take(flat, base + lo * j, axis=0)
    xh = np.take(flat, base + hi * j, axis=0)
    w = np.where(hi > lo, (idx - lo) / np.maximum(hi - lo, 1), 0.0)[..., None]
    return np.asarray(xl + (xh - xl) * w)


def _lateral_order(xy: np.ndarray) -> np.ndarray:
    """:func:`descriptors._lateral_order` over ``(B, T, 18, 2)``."""
    dx = xy[:, :, _RIGHTS, 0] - xy[:, :, _LEFTS, 0]  # (B, T, 6)
    med = _median(dx)  # (B, 6)
    spread = _median(np.abs(dx - med[:, None])) * 1.4826 + 1e-9
    ordered = (np.abs(med) > 2.0 * spread) & np.isfinite(med)
    if not ordered.any():
        return xy
    against = (np.sign(dx) != np.sign(med)[:, None]) & (np.abs(dx) > 0.5 * np.abs(med)[:, None])
    against &= ordered[:, None]
    out = xy
    for p, (right, left) in enumerate(D._LIMBS):
        cols = slice(3 * p, 3 * p + 3)
        swap = against[:, :, cols].sum(axis=2) * 2 > ordered[:, cols].sum(axis=1)[:, None]
        if swap.any():
            if out is xy:
                out = xy.copy()
            out[:, :, right + left] = np.where(
                swap[..., None, None], xy[:, :, left + right], xy[:, :, right + left]
            )
    return out


def _detrend(y: np.ndarray) -> np.ndarray:
    v, pinv = D._trend(y.shape[1])
    return np.asarray(y - v @ (pinv @ y))


def _explained(y: np.ndarray, fps: float, harmonic: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`descriptors._explained` per walk of ``y`` (B, T, K): (B, F) each."""
    b, n, k_sig = y.shape
    total = (y * y).sum(axis=(1, 2))
    freqs, basis, ginv = D._grid(n, float(fps), harmonic)
    # One product for the whole batch: (2F, T) @ (T, B * K).
    flat = np.ascontiguousarray(y.transpose(1, 0, 2)).reshape(n, b * k_sig)
    r = (basis @ flat).reshape(len(freqs), 2, b, k_sig)
    r0, r1 = r[:, 0], r[:, 1]
    g = ginv[:, :, :, None, None]
    power = g[:, 0, 0] * r0 * r0 + (g[:, 0, 1] + g[:, 1, 0]) * r0 * r1 + g[:, 1, 1] * r1 * r1
    power = power.sum(axis=2).T  # (B, F)
    live = np.isfinite(total) & (total > 1e-18)
    power = np.where(live[:, None], power, 0.0)
    return power / np.where(live, total, 1.0)[:, None], power


def _stride_frequency(sep: np.ndarray, fps: float) -> tuple[np.ndarray, ...]:
    """:func:`descriptors._stride_frequency` per walk of ``sep`` (B, T, K)."""
    d = _detrend(sep)
    b, n, k_sig = d.shape
    nan = np.full(b, np.nan)
    dead = (d * d).sum(axis=(1, 2)) <= 1e-18
    e1, power = _explained(d, fps, 1)
    centred = np.abs(sep.mean(axis=1)) < d.std(axis=1)  # (B, K)
    e2 = np.zeros_like(e1)
    if centred.any():
        e2, _ = _explained(_detrend(sep**2) * centred[:, None, :], fps, 2)
    score = e1 + e2
    freqs = D._grid(n, float(fps))[0]
    rows = np.arange(b)
    k = np.argmax(score, axis=1)
    explained = np.minimum(score[rows, k] / 2.0, 1.0 - 1e-9)
    amplitude = np.sqrt(2.0 * power[rows, k] / (n * k_sig))
    stat = explained / (1.0 - explained) * n
    inner = np.clip(k, 1, len(freqs) - 2)
    a, bb, c = score[rows, inner - 1], score[rows, inner], score[rows, inner + 1]
    den = a - 2 * bb + c
    safe = np.where(den < 0, den, -1.0)
    offset = np.where(den < 0, np.clip(0.5 * (a - c) / safe, -0.5, 0.5), 0.0)
    f = freqs[k] + offset * D._GRID_STEP_HZ
    f = np.where((k == 0) | (k == len(freqs) - 1), nan, f)
    return (
        np.where(dead, nan, f),
        np.where(dead, 0.0, stat),
        np.where(dead, 0.0, amplitude),
    )


def _design(n: int, fps: float, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`descriptors._harmonic_design` per walk: (B, T, 11) and (B, 11, 11)."""
    t = np.arange(n) / fps
    tau = np.linspace(-1.0, 1.0, n)
    k = np.arange(1, D.HARMONICS + 1)
    ang = 2 * np.pi * f[:, None, None] * t[None, :, None] * k[None, None, :]
    b = len(f)
    fixed = np.broadcast_to(np.stack([np.ones(n), tau, tau * tau], axis=1), (b, n, 3))
    basis = np.concatenate([fixed, np.cos(ang), np.sin(ang)], axis=2)
    gram = basis.transpose(0, 2, 1) @ basis + np.eye(basis.shape[2]) * 1e-9
    return basis, gram


def _suspect(u: np.ndarray, basis: np.ndarray, gram: np.ndarray) -> np.ndarray:
    """Per walk: would :func:`descriptors._relabel` look for swapped frames?"""
    b, n = u.shape[:2]
    parts = []
    for right, left in D._LIMBS:
        parts += [u[:, :, right].reshape(b, n, -1), u[:, :, left].reshape(b, n, -1)]
    chains = np.concatenate(parts, axis=2)
    model = basis @ np.linalg.solve(gram, basis.transpose(0, 2, 1) @ chains)
    out = np.zeros(b, dtype=bool)
    col = 0
    for p in range(len(D._LIMBS)):
        k = parts[2 * p].shape[2]
        r, lft = chains[:, :, col : col + k], chains[:, :, col + k : col + 2 * k]
        mr, ml = model[:, :, col : col + k], model[:, :, col + k : col + 2 * k]
        straight = np.abs(r - mr).sum(2) + np.abs(lft - ml).sum(2)
        cross = np.abs(lft - mr).sum(2) + np.abs(r - ml).sum(2)
        out |= (cross < D.SWAP_RATIO * straight).any(axis=1)
        col += 2 * k
    return out


def _excursion(coef: np.ndarray, harmonics: Sequence[int] | None = None) -> np.ndarray:
    """:func:`descriptors._excursion` per walk of ``coef`` (B, 2H, K): (B, K)."""
    c = coef
    if harmonics is not None:
        keep = np.zeros(D.HARMONICS, dtype=bool)
        keep[[h - 1 for h in harmonics]] = True
        c = coef * np.concatenate([keep, keep])[None, :, None]
    wave = D._WAVE @ c
    return np.asarray(wave.max(axis=1) - wave.min(axis=1))


def _finite_mean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """:func:`descriptors._mean` of two values per walk."""
    fa, fb = np.isfinite(a), np.isfinite(b)
    both = (np.where(fa, a, 0.0) + np.where(fb, b, 0.0)) / np.maximum(fa * 1 + fb * 1, 1)
    return np.where(fa | fb, both, np.nan)


def _measure_group(arr: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Descriptors (B, len(DESCRIPTORS)) of walks ``arr`` (B, T, 18, 3) already cut to the
    frames :func:`descriptors._prepare` keeps, and which of them the batched path could not
    measure (``False``: measure them one by one)."""
    b, n = arr.shape[:2]
    out = np.full((b, len(D.DESCRIPTORS)), np.nan)
    xy = arr[..., :2]
    conf = arr[..., 2]
    valid = (conf >= D.MIN_CONFIDENCE) & np.isfinite(xy).all(-1) & np.isfinite(conf)
    ok = valid.any(axis=1).all(axis=1)  # every joint seen at least once
    xy = np.where(valid[..., None], xy, 0.0)
    ys = np.where(valid, arr[..., 1], 0.0)
    n_low, n_up = valid[:, :, _LOWER].sum(axis=(1, 2)), valid[:, :, _UPPER].sum(axis=(1, 2))
    with np.errstate(all="ignore"):
        low = ys[:, :, _LOWER].sum(axis=(1, 2)) / n_low
        up = ys[:, :, _UPPER].sum(axis=(1, 2)) / n_up
    flip = (n_low > 0) & (n_up > 0) & (low < up)
    xy[..., 1] *= np.where(flip, -1.0, 1.0)[:, None, None]
    xy = _lateral_order(_fill(xy, valid))

    # Body height: neck to the lower ankle, 1/h a straight line in time.
    top = xy[:, :, D._NECK, 1]
    bottom = xy[:, :, [D._RA, D._LA], 1].max(axis=2)
    h = (bottom - top) / D.NECK_TO_ANKLE
    ok &= (h > 1e-3).all(axis=1)
    h = np.where(ok[:, None], h, 1.0)
    frames = np.arange(n, dtype=np.float64)
    inv = 1.0 / h
    a, s = _line(frames, inv)
    res = inv - (a[:, None] + s[:, None] * frames[None, :])
    mad = _median(np.abs(res)) + 1e-12
    keep = np.abs(res) < 3.0 * 1.4826 * mad[:, None] + 1e-9
    refit = keep.sum(axis=1) >= D.MIN_FRAMES // 2
    a2, s2 = _line(frames, inv, keep | ~refit[:, None])
    a, s = np.where(refit, a2, a), np.where(refit, s2, s)
    fitted = a[:, None] + s[:, None] * frames[None, :]
    ok &= (fitted > 0).all(axis=1)
    h = 1.0 / np.where(ok[:, None], fitted, 1.0)
    u = xy / h[:, :, None, None]

    sw = _median(np.abs(xy[:, :, D._RS, 0] - xy[:, :, D._LS, 0]) / h)
    hw = _median(np.abs(xy[:, :, D._RH, 0] - xy[:, :, D._LH, 0]) / h)
    cos_az = np.clip((sw / D.SHOULDER_WIDTH + hw / D.HIP_WIDTH) / 2, 0.0, 1.0)

    pelvis = xy[:, :, [D._RH, D._LH]].mean(axis=2)
    du = np.diff(pelvis[:, :, 0], axis=1) * 0.5 * (1.0 / h[:, 1:] + 1.0 / h[:, :-1])
    dist = np.concatenate([np.zeros((b, 1)), np.cumsum(du, axis=1)], axis=1)
    t = np.arange(n) / fps
    travel = _line(t, dist)[1]

    sep = np.concatenate([u[:, :, D._RA] - u[:, :, D._LA], u[:, :, D._RK] - u[:, :, D._LK]], axis=2)
    f, periodicity, amplitude = _stride_frequency(sep, fps)
    cyc = np.isfinite(f)
    basis = np.zeros((b, n, 3 + 2 * D.HARMONICS))
    gram = np.broadcast_to(np.eye(basis.shape[2]), (b, *[basis.shape[2]] * 2)).copy()
    if cyc.any():
        basis[cyc], gram[cyc] = _design(n, fps, f[cyc])
        ok &= ~(cyc & _suspect(u, basis, gram))
    gait = (
        cyc
        & (fps >= D.MIN_FPS)
        & (periodicity >= D.MIN_PERIODICITY)
        & (amplitude >= D.MIN_SEPARATION)
        & D.enough_cycles(f * t[-1], periodicity)
    )
    f = np.where(gait, f, np.nan)

    # Per walk: the view and what it lets us measure (scalars; cheap).
    views, sin_az = [], np.zeros(b)
    lateral, frontal = np.zeros(b, dtype=bool), np.zeros(b, dtype=bool)
    for i in range(b):
        per_stride = abs(travel[i]) / f[i] if gait[i] else float("nan")
        view = D._view_class(float(cos_az[i]), per_stride)
        c = float(cos_az[i]) if np.isfinite(cos_az[i]) else float(np.cos(np.pi / 4))
        if view == "oblique":
            c = min(c, D.OBLIQUE_MAX_COS)
        cos_az[i] = c
        sin_az[i] = float(np.sqrt(max(1.0 - c * c, 0.0)))
        lateral[i] = view != "frontal" and sin_az[i] >= D.MIN_FACTOR
        frontal[i] = view != "side" and c >= D.MIN_FACTOR
        views.append(view)
    oblique = np.array([v == "oblique" for v in views])
    is_frontal = np.array([v == "frontal" for v in views])

    # Camera elevation (see descriptors._elevation_cos).
    sign = np.where(travel > 0, 1.0, -1.0)[:, None]
    drop_s = _median(sign * (xy[:, :, D._RS, 1] - xy[:, :, D._LS, 1]) / h) / D.SHOULDER_WIDTH
    drop_h = _median(sign * (xy[:, :, D._RH, 1] - xy[:, :, D._LH, 1]) / h) / D.HIP_WIDTH
    safe_sin = np.where(sin_az > 0, sin_az, 1.0)
    tan_el = np.clip((drop_s + drop_h) / 2 / safe_sin, 0.0, D.MAX_TAN_ELEVATION)
    cos_el = 1.0 / np.sqrt(1.0 + tan_el * tan_el)
    flat = ~lateral | ~np.isfinite(travel) | (travel == 0.0) | (sin_az < D.MIN_FACTOR)
    cos_el = np.where(flat | ~np.isfinite(tan_el), 1.0, cos_el)

    direction = np.sign(travel)
    still = (direction == 0.0) | (np.abs(travel) * t[-1] < 0.05)
    nose = np.sign(_median(xy[:, :, D._NOSE, 0] - xy[:, :, D._NECK, 0]))
    direction = np.where(still, nose, direction)

    moving = lateral & (np.abs(travel) * t[-1] >= 0.25)
    speed = np.where(moving, np.abs(travel) / safe_sin * cos_el, np.nan)
    out[:, _IDX["speed"]] = speed

    posture = lateral & (direction != 0.0)
    trunk = pelvis - xy[:, :, D._NECK]
    dirn, sa, ce = direction[:, None], safe_sin[:, None], cos_el[:, None]
    lean = _median(np.degrees(np.arctan2(dirn * -trunk[:, :, 0] / sa, trunk[:, :, 1] / ce)))
    head = xy[:, :, D._NOSE] - xy[:, :, D._NECK]
    head_abs = _median(np.degrees(np.arctan2(dirn * head[:, :, 0] / sa, -head[:, :, 1] / ce)))
    out[:, _IDX["trunk_lean"]] = np.where(posture, lean, np.nan)
    out[:, _IDX["head_pitch"]] = np.where(posture, head_abs - lean - D.HEAD_OFFSET_DEG, np.nan)

    g = np.nonzero(gait & ok)[0]
    out[g, _IDX["cadence"]] = 120.0 * f[g]
    out[g, _IDX["stride"]] = speed[g] / f[g]
    if g.size:
        _cycle(out, g, u[g], pelvis[g] / h[g][:, :, None], basis[g], gram[g], cos_az, sin_az,
               cos_el, lateral, frontal, oblique, is_frontal)  # fmt: skip
    return out, ok


def _cycle(
    out: np.ndarray,
    g: np.ndarray,
    u: np.ndarray,
    pel: np.ndarray,
    basis: np.ndarray,
    gram: np.ndarray,
    cos_az: np.ndarray,
    sin_az: np.ndarray,
    cos_el: np.ndarray,
    lateral: np.ndarray,
    frontal: np.ndarray,
    oblique: np.ndarray,
    is_frontal: np.ndarray,
) -> None:
    """The gait-cycle amplitudes of the walks ``g`` (see the end of descriptors._measure)."""
    n = u.shape[1]
    signals = np.stack(
        [
            pel[:, :, 0],
            pel[:, :, 1],
            u[:, :, D._RW, 0] - u[:, :, D._RS, 0],
            u[:, :, D._LW, 0] - u[:, :, D._LS, 0],
            u[:, :, D._RA, 1],
            u[:, :, D._LA, 1],
            u[:, :, D._RA, 0],
            u[:, :, D._RA, 1] - pel[:, :, 1],
            u[:, :, D._LA, 0],
            u[:, :, D._LA, 1] - pel[:, :, 1],
        ],
        axis=2,
    )
    full = np.linalg.solve(gram, basis.transpose(0, 2, 1) @ signals)
    coef = full[:, 3:]
    resid = signals - basis @ full
    var = (resid * resid).sum(axis=1) / (n - basis.shape[2])
    ca, cb = coef[:, : D.HARMONICS], coef[:, D.HARMONICS :]
    amp2 = ca * ca + cb * cb
    keep = np.sqrt(np.clip(1.0 - 4.0 * var[:, None] / n / np.maximum(amp2, 1e-18), 0.0, 1.0))
    coef = np.concatenate([ca * keep, cb * keep], axis=1)

    exc = _excursion(coef)
    fr, lat = frontal[g], lateral[g]
    sway = _excursion(coef[:, :, :1], (1, 3))[:, 0] / cos_az[g]
    out[g, _IDX["sway"]] = np.where(fr, sway, np.nan)
    bounce_step = _excursion(coef[:, :, 1:2], (2, 4))[:, 0]
    out[g, _IDX["bounce"]] = np.where(is_frontal[g], exc[:, 1], bounce_step)
    arms = exc[:, 2:4] / 2.0 / sin_az[g][:, None] * cos_el[g][:, None]
    out[g, _IDX["arm_swing_r"]] = np.where(lat, arms[:, 0], np.nan)
    out[g, _IDX["arm_swing_l"]] = np.where(lat, arms[:, 1], np.nan)
    out[g, _IDX["arm_swing"]] = np.where(lat, _finite_mean(arms[:, 0], arms[:, 1]), np.nan)
    wave = D._WAVE @ coef[:, :, 4:10]  # (B, 96, 6)
    lifts = []
    for yc, xc in ((0, 2), (1, 4)):
        y, x = wave[:, :, yc], wave[:, :, xc]
        a = (x * y).sum(axis=1) / np.maximum((x * x).sum(axis=1), 1e-12)
        lifted = np.where(oblique[g][:, None], y - a[:, None] * x, y)
        lifts.append(lifted.max(axis=1) - lifted.min(axis=1))
    out[g, _IDX["foot_clearance"]] = np.where(lat, _finite_mean(*lifts), np.nan)

    h = D.HARMONICS
    zr = coef[:, 0, 6:8] + 1j * coef[:, h, 6:8]
    zl = coef[:, 0, 8:10] + 1j * coef[:, h, 8:10]
    ar = np.sqrt((np.abs(zr) ** 2).sum(axis=1))
    al = np.sqrt((np.abs(zl) ** 2).sum(axis=1))
    mean = 0.5 * (ar + al)
    trust = np.minimum(1.0, mean / D.FULL_ANKLE_SWING)
    amp = np.abs(ar - al) / np.maximum(mean, D.FULL_ANKLE_SWING)
    lag = np.angle((zr * np.conj(zl)).sum(axis=1))
    timing = trust * 4.0 * np.abs(np.abs(lag) - np.pi) / (2 * np.pi)
    out[g, _IDX["step_asymmetry"]] = np.where(
        mean >= D.MIN_ANKLE_SWING, np.maximum(amp, timing), np.nan
    )


def _cut(keypoints: np.ndarray) -> np.ndarray | None:
    """The frames :func:`descriptors._prepare` measures, as float64; None for a walk the
    batched path does not take (wrong shape, too short, no confidence channel)."""
    arr = np.asarray(keypoints, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1] != 18 or arr.shape[2] < 3:
        return None
    arr = D.measured_frames(arr)
    return arr[..., :3] if arr.shape[0] >= D.MIN_FRAMES else None


def measure_many(
    sequences: Sequence[np.ndarray], fps: Sequence[float] | float, batch: int = 512
) -> np.ndarray:
    """``(n, len(DESCRIPTORS))`` float32 descriptors of many sequences: those measured on
    the same number of frames at the same frame rate together, the rest one by one."""
    n = len(sequences)
    if isinstance(fps, (int, float, np.number)):
        rates = [float(fps)] * n
    else:
        rates = [float(r) for r in np.asarray(fps, dtype=np.float64).reshape(-1)]
    if len(rates) != n:
        raise ValueError(f"{n} sequences but {len(rates)} frame rates")
    out = np.full((n, len(D.DESCRIPTORS)), np.nan, dtype=np.float32)
    groups: dict[tuple[int, float], list[tuple[int, np.ndarray]]] = {}
    alone: list[int] = []
    for i, (seq, rate) in enumerate(zip(sequences, rates, strict=True)):
        cut = _cut(seq) if np.isfinite(rate) and rate > 0 else None
        if cut is None:
            alone.append(i)
        else:
            groups.setdefault((cut.shape[0], rate), []).append((i, cut))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with np.errstate(all="ignore"):
            for (_, rate), members in groups.items():
                for start in range(0, len(members), batch):
                    part = members[start : start + batch]
                    rows = np.array([i for i, _ in part])
                    try:
                        values, ok = _measure_group(np.stack([c for _, c in part]), rate)
                    except np.linalg.LinAlgError:  # a degenerate walk: all one by one
                        values, ok = out[rows], np.zeros(len(rows), dtype=bool)
                    out[rows[ok]] = values[ok]
                    alone += rows[~ok].tolist()
            for i in alone:
                out[i] = D._measure(sequences[i], rates[i])
    return out
