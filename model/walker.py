"""A parametric 3D walker: attribute sets in, OpenPose-18 joint trajectories (metres) out.

The gait cycle follows textbook sagittal kinematics (hip flexion/extension, a two-peaked knee
curve, stance and swing), with pelvic rotation, obliquity (list) and lateral sway, vertical
bounce, counter-rotating shoulders, arm swing in anti-phase with the legs, trunk lean and
head pitch. Cadence and stride length follow from height and speed (stride grows with
height and with speed^0.6, so cadence rises with speed; see DENSEGAIT.md for the typical
values). Every attribute value changes parameters through
:data:`gaitsearch.model.gait_effects.GAIT_EFFECTS` and the held arm poses below; the docs
table them.

Everything is vectorised over a batch of walkers and all their frames at once: parameters
are ``(B,)`` arrays, trajectories ``(B, T, 18, 3)``.

Coordinates: x forward along the walking direction, y to the walker's left, z up; ground at
z = 0. Phase 0 of the gait cycle is the right heel strike.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from gaitsearch.model.attributes import STYLE_GROUPS
from gaitsearch.model.gait_effects import BASE_PARAMETERS, apply_effect, pace_speed_factor

# Arm pose codes: what an arm does besides swinging.
SWING, PHONE, TEXT, POCKET, STRAP, SUITCASE, HANDBAG, CANE = range(8)

DEG = np.pi / 180.0


@dataclass
class GaitParams:
    """Per-walker parameters, each a ``(B,)`` array (angles in radians, lengths in metres)."""

    height: np.ndarray
    speed: np.ndarray
    stride: np.ndarray  # stride length: two steps
    duty: np.ndarray  # stance fraction of the cycle
    hip_amp: np.ndarray
    hip_off: np.ndarray
    knee_stance: np.ndarray
    knee_swing: np.ndarray
    hip_lift: np.ndarray
    bounce: np.ndarray
    sway: np.ndarray
    rot: np.ndarray
    list: np.ndarray
    step_width: np.ndarray
    hip_w: np.ndarray
    shoulder_w: np.ndarray
    leg: np.ndarray  # hip joint to ankle, straight
    torso: np.ndarray  # pelvis centre to neck
    upper_arm: np.ndarray
    forearm: np.ndarray
    head_scale: np.ndarray
    ankle_h: np.ndarray  # ankle height above ground at stance (heels raise it)
    heel_rise: np.ndarray  # how far the ankle rises as the heel comes off in late stance
    lean: np.ndarray
    head_pitch: np.ndarray
    lat_lean: np.ndarray  # constant lateral trunk lean (+ = toward the left)
    arm_amp: np.ndarray  # (B, 2): right, left
    arm_off: np.ndarray  # (B, 2) resting shoulder flexion
    elbow: np.ndarray  # (B, 2)
    abduct: np.ndarray  # (B, 2)
    pose: np.ndarray  # (B, 2) int arm pose codes
    shoulder_lift: np.ndarray  # (B, 2) metres
    bad_side: np.ndarray  # 0 none, -1 right leg, +1 left leg
    limp: np.ndarray  # limp severity 0..1
    running: np.ndarray  # 0/1
    phase0: np.ndarray
    phase_jitter: np.ndarray
    leg_asym: np.ndarray  # left/right hip amplitude ratio - 1
    # Walking styles (all zero / one for a walker without one: the motion is unchanged).
    stagger: np.ndarray  # metres of irregular lateral deviation of the path
    stagger_freq: np.ndarray  # (B, 3) cycles per stride of its components
    stagger_phase: np.ndarray  # (B, 3)
    impact: np.ndarray  # metres of pelvis drop just after each heel strike
    elbow_swing: np.ndarray  # scale of the elbow's flexion with forward swing
    crouch: np.ndarray  # constant extra knee flexion (radians)

    @property
    def batch(self) -> int:
        return int(self.height.shape[0])

    @property
    def cadence(self) -> np.ndarray:
        """Steps per minute."""
        return 120.0 * self.speed / self.stride


def gait_params(
    attribute_sets: Sequence[Mapping[str, Any]], rng: np.random.Generator
) -> GaitParams:
    """Sample per-person parameters for each attribute set (one walker each)."""
    b = len(attribute_sets)
    # The style draws come from their own generator, seeded from (not drawn from) ``rng``, so
    # walkers without a style get exactly the numbers they always had.
    digest = hashlib.sha256(repr(rng.bit_generator.state).encode()).digest()
    style_rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    intensity = np.clip(style_rng.lognormal(0.0, 0.25, (b, len(STYLE_GROUPS))), 0.5, 1.8)
    rows = []
    for i, attrs in enumerate(attribute_sets):
        values = dict(BASE_PARAMETERS)
        for group, value in attrs.items():
            k = STYLE_GROUPS.index(group) if group in STYLE_GROUPS else -1
            apply_effect(values, group, value, float(intensity[i, k]) if k >= 0 else 1.0)
        rows.append(values)
    col = {k: np.array([r[k] for r in rows], dtype=np.float64) for k in BASE_PARAMETERS}
    # Pace sets the speed; the other attributes' slow-downs compound less than multiplicatively
    # (an elderly, tired texter at "normal" pace still walks at a plausible speed).
    pace_mul = np.array([pace_speed_factor(a.get("pace", "normal")) for a in attribute_sets])
    base = BASE_PARAMETERS["speed"] * pace_mul
    col["speed"] = base * np.power(col["speed"] / base, 0.75)

    def attr(group: str, default: str) -> np.ndarray:
        return np.array([str(a.get(group, default)) for a in attribute_sets])

    gender, age = attr("gender", "male"), attr("age", "adult")
    pace, carrying = attr("pace", "normal"), attr("carrying", "nothing")
    impairment, footwear = attr("impairment", "none"), attr("footwear", "flat")
    female, child, elderly = gender == "female", age == "child", age == "elderly"
    running = (pace == "running").astype(np.float64)

    def jitter(scale: float, size: int | tuple[int, ...] = b) -> np.ndarray:
        return rng.normal(0.0, scale, size)

    # Anthropometry.
    height = np.where(female, 1.63, 1.77) + jitter(0.065)
    height = np.where(child, rng.uniform(1.0, 1.5, b), height)
    height = np.where(elderly, height - 0.03, height)
    height = np.clip(height, 0.95, 2.05)
    leg_ratio = np.where(child, 0.46, 0.49) + jitter(0.008)
    ankle_h = 0.045 * height / 1.7 + np.where(footwear == "heels", 0.07, 0.0)
    ankle_h += np.where(footwear == "boots", 0.015, 0.0)
    ankle_h = ankle_h + col["heel_raise"] * height / 1.75
    leg = leg_ratio * height
    torso = (0.815 - 0.985 * leg_ratio - 0.026) * height + jitter(0.008)
    head_scale = np.where(child, 1.25, 1.0) * (1 + jitter(0.04))
    hip_w = col["hip_w"] * height / 1.7 * (1 + jitter(0.06))
    shoulder_w = col["shoulder_w"] * height / 1.7 * (1 + jitter(0.05))
    upper_arm = 0.186 * height * (1 + jitter(0.03))
    forearm = 0.146 * height * (1 + jitter(0.03))

    # Speed, stride and cadence.
    speed = col["speed"] * (1 + jitter(0.07))
    run_speed = rng.uniform(2.4, 3.6, b) * np.clip(col["speed"] / 1.35, 0.75, 1.1)
    speed = np.where(running > 0, run_speed, speed)
    speed = np.where(child, speed * np.sqrt(height / 1.3), speed)
    walk_stride = 0.8 * height * np.power(np.maximum(speed, 0.2) / 1.35, 0.6)
    run_stride = 1.25 * height * np.power(np.maximum(speed, 0.5) / 3.0, 0.7)
    stride = np.where(running > 0, run_stride, walk_stride) * col["stride"] * (1 + jitter(0.04))
    # Keep cadence in the human range (walking 65-155, running 140-195 steps/min).
    lo = np.where(running > 0, 140.0, 65.0) / 120.0
    hi = np.where(running > 0, 195.0, 155.0) / 120.0
    stride = np.clip(stride, speed / hi, speed / lo)
    duty = np.where(running > 0, 0.36, 0.62 - 0.04 * (speed - 1.35)) + jitter(0.01)
    hip_off = (8.0 + jitter(2.0)) * DEG
    # During stance the pelvis travels stride * duty over the foot; the heel-to-toe roll of
    # the foot (about 8% of height) covers part of it, the leg's swing the rest.
    rocker = np.where(running > 0, 0.02, 0.08) * height  # runners land on the forefoot
    reach = (stride * duty - rocker) / (2.0 * leg * np.cos(hip_off))
    hip_amp = np.arcsin(np.clip(reach, 0.05, 0.75))
    knee_stance = np.where(running > 0, 40.0, 15.0 + 5.0 * (speed - 1.35)) * DEG
    knee_swing = np.where(running > 0, 105.0, col["knee_swing"] + 8.0 * (speed - 1.35)) * DEG
    knee_swing = knee_swing * (1 + jitter(0.06))
    bounce = np.where(running > 0, 0.085, col["bounce"] * (speed / 1.35) ** 0.5) * (1 + jitter(0.1))

    # Arms: swing amplitude grows with speed; per-arm asymmetry is idiosyncratic.
    arm = col["arm"] * np.clip(speed / 1.35, 0.5, 1.6) ** 0.8
    arm = np.where(running > 0, col["arm"] * 1.2, arm)
    arm_amp = (arm[:, None] * (1 + jitter(0.15, (b, 2)))) * DEG
    arm_off = jitter(3.0, (b, 2)) * DEG
    elbow = (col["elbow"][:, None] + jitter(4.0, (b, 2))) * DEG
    abduct = (col["abduct"][:, None] + jitter(2.0, (b, 2))) * DEG
    pose = np.zeros((b, 2), dtype=np.int64)
    shoulder_lift = jitter(0.006, (b, 2))
    lat_lean = jitter(1.0) * DEG
    lean = (col["lean"] + jitter(2.0)) * DEG
    head_pitch = (col["head"] + jitter(4.0)) * DEG

    side = rng.integers(0, 2, b)  # which arm carries / which leg is bad (0 right, 1 left)
    rows_idx = np.arange(b)
    other = 1 - side
    sign = np.where(side == 1, 1.0, -1.0)  # +1 = left

    for code, name in (
        (PHONE, "phone_call"),
        (HANDBAG, "handbag"),
        (SUITCASE, "suitcase"),
    ):
        m = carrying == name
        pose[rows_idx[m], side[m]] = code
    m = carrying == "handbag"
    lat_lean = np.where(m, lat_lean - sign * rng.uniform(2.0, 5.0, b) * DEG, lat_lean)
    shoulder_lift[rows_idx[m], side[m]] += 0.015
    for name, code in (("texting", TEXT), ("hands_in_pockets", POCKET)):
        pose[carrying == name] = code
    # Backpack: about half hold the straps, the others swing their arms less.
    straps = (carrying == "backpack") & (rng.random(b) < 0.5)
    pose[straps] = STRAP
    arm_amp[(carrying == "backpack") & ~straps] *= 0.75
    # Suitcase: the free arm swings a little more.
    m = carrying == "suitcase"
    arm_amp[rows_idx[m], other[m]] *= 1.15

    # Impairments: the bad leg is `side`; a cane goes in the opposite hand.
    limp = np.where(impairment == "limp", rng.uniform(0.6, 1.0, b), 0.0)
    limp = np.where(impairment == "cane", rng.uniform(0.25, 0.5, b), limp)
    bad_side = np.where(impairment != "none", sign, 0.0)
    cane = impairment == "cane"
    cane_hand = np.where(side == 1, 0, 1)  # opposite the bad leg
    # The cane hand wins over whatever that hand carried; texting keeps its other hand.
    pose[rows_idx[cane], cane_hand[cane]] = CANE
    m = cane & (carrying == "texting")
    pose[rows_idx[m], 1 - cane_hand[m]] = TEXT
    lat_lean = np.where(cane, lat_lean - sign * rng.uniform(2.0, 4.0, b) * DEG, lat_lean)

    return GaitParams(
        height=height,
        speed=speed,
        stride=stride,
        duty=duty,
        hip_amp=hip_amp,
        hip_off=hip_off,
        knee_stance=knee_stance,
        knee_swing=knee_swing,
        hip_lift=col["hip_lift"] * DEG,
        bounce=bounce,
        sway=col["sway"] * height / 1.7 * (1 + jitter(0.15)) * (1 - 0.6 * running),
        rot=col["rot"] * (1 + jitter(0.2)) * DEG,
        list=col["list"] * (1 + jitter(0.2)) * DEG,
        step_width=np.maximum(col["step_width"] * (1 + jitter(0.2)), 0.0),
        hip_w=hip_w,
        shoulder_w=shoulder_w,
        leg=leg,
        torso=torso,
        upper_arm=upper_arm,
        forearm=forearm,
        head_scale=head_scale,
        ankle_h=ankle_h,
        heel_rise=0.06 * height / 1.75 * np.where(footwear == "heels", 0.5, 1.0),
        lean=lean,
        head_pitch=head_pitch,
        lat_lean=lat_lean,
        arm_amp=arm_amp,
        arm_off=arm_off,
        elbow=elbow,
        abduct=abduct,
        pose=pose,
        shoulder_lift=shoulder_lift,
        bad_side=bad_side,
        limp=limp,
        running=running,
        phase0=rng.random(b),
        phase_jitter=rng.uniform(0.0, 0.015, b) + col["step_var"],
        leg_asym=jitter(0.04),
        stagger=col["stagger"] * height / 1.7,
        stagger_freq=style_rng.uniform(0.15, 0.6, (b, 3)),
        stagger_phase=style_rng.uniform(0.0, 2 * np.pi, (b, 3)),
        impact=col["impact"] * height / 1.7,
        elbow_swing=col["elbow_swing"],
        crouch=col["crouch"] * DEG,
    )


def subset(params: GaitParams, idx: np.ndarray | slice) -> GaitParams:
    """The walkers ``idx`` of a batch."""
    return GaitParams(**{f.name: getattr(params, f.name)[idx] for f in fields(params)})


# --- the gait cycle ------------------------------------------------------------------------


def _bump(phase: np.ndarray, centre: np.ndarray | float, width: np.ndarray | float) -> np.ndarray:
    """A Gaussian bump on the unit circle of phase."""
    d = (phase - centre + 0.5) % 1.0 - 0.5
    return np.exp(-0.5 * (d / width) ** 2)


def _warp(phase: np.ndarray, stance: np.ndarray, duty: np.ndarray) -> np.ndarray:
    """Map a leg's own phase so its stance lasts ``stance`` of the cycle instead of ``duty``."""
    p = phase % 1.0
    return np.where(p < stance, p * duty / stance, duty + (p - stance) * (1 - duty) / (1 - stance))


def _leg_angles(
    phase: np.ndarray, p: GaitParams, amp_scale: np.ndarray, knee_scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Hip flexion and knee flexion (radians) at each phase, shape (B, T)."""
    c = lambda a: a[:, None]  # noqa: E731
    duty = c(p.duty)
    hip = c(p.hip_off) + c(p.hip_amp * amp_scale) * np.cos(2 * np.pi * (phase + 0.06))
    hip = hip + c(p.hip_lift) * _bump(phase, duty + 0.2, 0.08) + 0.5 * c(p.crouch)
    knee = c(p.crouch) + (
        c(p.knee_stance * knee_scale) * _bump(phase, 0.24 * duty, 0.09 * duty / 0.62)
        + c(p.knee_swing * knee_scale) * _bump(phase, duty + 0.11, 0.11)
        + 3.0 * DEG
    )
    return hip, knee


def _frame(
    yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward, left and up unit vectors of a body part (each (..., 3)).

    ``pitch`` tilts the part forward, ``roll`` tilts it toward the left, ``yaw`` turns it
    left, in that order of application (pitch and roll first, then yaw).
    """
    sp, cp, sr, cr = np.sin(pitch), np.cos(pitch), np.sin(roll), np.cos(roll)
    up = np.stack([sp * cr, sr, cp * cr], axis=-1)
    fwd = np.stack([cp, np.zeros_like(cp), -sp], axis=-1)
    left = np.cross(up, fwd)
    left /= np.linalg.norm(left, axis=-1, keepdims=True)
    fwd = np.cross(left, up)
    cy, sy = np.cos(yaw)[..., None], np.sin(yaw)[..., None]

    def turn(v: np.ndarray) -> np.ndarray:
        x, y = v[..., :1], v[..., 1:2]
        return np.concatenate([cy * x - sy * y, sy * x + cy * y, v[..., 2:]], axis=-1)

    return turn(fwd), turn(left), turn(up)


def _local(
    origin: np.ndarray,
    axes: tuple[np.ndarray, np.ndarray, np.ndarray],
    a: np.ndarray | float,
    b: np.ndarray | float,
    c: np.ndarray | float,
) -> np.ndarray:
    """origin + a*fwd + b*left + c*up, broadcasting (B, T) coefficients."""
    fwd, left, up = axes

    def e(v: np.ndarray | float) -> np.ndarray:
        return np.asarray(v)[..., None] if np.ndim(v) else np.asarray(v)

    return origin + e(a) * fwd + e(b) * left + e(c) * up


def _support_height(
    p: GaitParams,
    phases: tuple[np.ndarray, np.ndarray],
    ankle_z: tuple[np.ndarray, np.ndarray],
    freq: np.ndarray,
) -> np.ndarray:
    """Pelvis height (B, T) at which the stance legs touch the ground.

    A leg in stance holds the pelvis at its vertical extent plus the ankle's height above
    the ground, which rises as the heel comes off in terminal stance. With two legs in
    stance the longer one wins. Frames with no leg in stance (a runner's flight) follow a
    ballistic hop between the neighbouring stance heights. ``bounce`` scales the resulting
    vertical excursion about its mean.
    """
    c = lambda a: a[:, None]  # noqa: E731
    duty = c(p.duty)
    heel_off = np.where(c(p.running) > 0, 0.3, 0.6) * duty
    required = []
    for phase, az in zip(phases, ankle_z, strict=True):
        s = np.clip((phase - heel_off) / (duty - heel_off), 0.0, 1.0)
        heel = c(p.heel_rise) * s * s * (3 - 2 * s)
        required.append(np.where(phase < duty, c(p.ankle_h) + heel - az, -np.inf))
    z = np.maximum(required[0], required[1])
    gap = ~np.isfinite(z)
    if gap.any():
        frames = np.arange(z.shape[1])
        for i in np.nonzero(gap.any(axis=1))[0]:
            ok = ~gap[i]
            if ok.any():
                z[i, ~ok] = np.interp(frames[~ok], frames[ok], z[i, ok])
            else:
                z[i] = p.leg[i] + p.ankle_h[i]
        flight = np.maximum(0.5 - duty, 0.0) / c(freq)  # seconds
        since = np.minimum((phases[0] - duty) % 1.0, (phases[1] - duty) % 1.0) / c(freq)
        hop = 0.5 * 9.81 * since * np.maximum(flight - since, 0.0)
        z = z + np.where(gap, hop, 0.0)
    mean = z.mean(axis=1, keepdims=True)
    return mean + (z - mean) * c(p.bounce)


def simulate(
    params: GaitParams, n_frames: int, fps: np.ndarray | float, start_frame: int = 0
) -> np.ndarray:
    """3D OpenPose-18 joints ``(B, T, 18, 3)`` in metres for ``n_frames`` frames at ``fps``.

    The walker starts near x = 0 and walks along +x. ``start_frame`` offsets the clock
    (frame-by-frame generation, as the benchmark's naive baseline does).
    """
    p = params
    b = p.batch
    fps = np.broadcast_to(np.asarray(fps, dtype=np.float64), (b,))
    frames = np.arange(start_frame, start_frame + n_frames, dtype=np.float64)
    t = frames[None, :] / fps[:, None]  # (B, T) seconds
    c = lambda a: a[:, None]  # noqa: E731
    freq = p.speed / p.stride  # strides per second
    # A slowly drifting phase: cycle-to-cycle variability of real walking.
    drift = np.cumsum(np.sin(2 * np.pi * c(freq) * t * 0.37 + c(p.phase0) * 7.0), axis=1)
    phase = c(p.phase0) + c(freq) * t + c(p.phase_jitter) * drift / np.maximum(c(fps) * 0.5, 1.0)

    # Legs: right leads at phase 0; a limp shortens the bad leg's stance and advances the
    # good leg's heel strike (asymmetric step timing).
    limp = c(p.limp)
    phase_r = phase % 1.0
    phase_l = (phase + 0.5 + 0.07 * limp) % 1.0
    duty = c(p.duty)
    bad_r, bad_l = c((p.bad_side < 0).astype(float)), c((p.bad_side > 0).astype(float))
    stance_bad = duty - 0.14 * limp
    phase_r = np.where(bad_r > 0, _warp(phase_r, stance_bad, duty), phase_r)
    phase_l = np.where(bad_l > 0, _warp(phase_l, stance_bad, duty), phase_l)
    amp_r = 1.0 - 0.35 * p.limp * (p.bad_side < 0) - p.leg_asym / 2
    amp_l = 1.0 - 0.35 * p.limp * (p.bad_side > 0) + p.leg_asym / 2
    knee_r = 1.0 - 0.45 * p.limp * (p.bad_side < 0)
    knee_l = 1.0 - 0.45 * p.limp * (p.bad_side > 0)
    hip_r, kn_r = _leg_angles(phase_r, p, amp_r, knee_r)
    hip_l, kn_l = _leg_angles(phase_l, p, amp_l, knee_l)

    # Pelvis: forward travel and lateral sway toward the stance leg; its height comes from
    # the legs (below), so the vertical bounce is what the gait geometry makes it.
    cyc = 2 * np.pi * phase
    x = c(p.speed) * t + 0.012 * c(p.stride) * np.sin(2 * cyc)
    y = -c(p.sway) * np.sin(cyc)
    # Staggering: a smooth, irregular lateral wander of the whole body (sum of three slow
    # sines per walker, in strides); the feet land under the wandering path.
    wander = np.zeros_like(y)
    if np.any(p.stagger > 0):
        for j in range(3):
            wander = wander + np.sin(
                2 * np.pi * c(p.stagger_freq[:, j]) * phase + c(p.stagger_phase[:, j])
            )
        wander = c(p.stagger) * wander / np.sqrt(1.5)
        y = y + wander
    pelvis = np.stack([x, y, np.zeros_like(x)], axis=-1)
    yaw = c(p.rot) * np.cos(cyc + 2 * np.pi * 0.06)
    roll = c(p.list) * np.sin(cyc)  # right hip up at right mid-stance
    pel_axes = _frame(yaw, np.zeros_like(yaw), roll)
    r_hip = _local(pelvis, pel_axes, 0.0, -c(p.hip_w), 0.0)
    l_hip = _local(pelvis, pel_axes, 0.0, c(p.hip_w), 0.0)

    thigh, shank = c(p.leg * 0.5), c(p.leg * 0.5)

    def leg_chain(hip_pt: np.ndarray, hip: np.ndarray, knee: np.ndarray, lat: float):
        leg_yaw = 0.5 * yaw
        fx, fy = np.cos(leg_yaw), np.sin(leg_yaw)
        k_fwd = thigh * np.sin(hip)
        k_dn = thigh * np.cos(hip)
        a_fwd = k_fwd + shank * np.sin(hip - knee)
        a_dn = k_dn + shank * np.cos(hip - knee)
        foot_y = lat * c(p.step_width) / 2.0 + wander  # feet keep their line; pelvis sways
        knee_pt = np.stack(
            [
                hip_pt[..., 0] + k_fwd * fx,
                0.5 * (hip_pt[..., 1] + k_fwd * fy) + 0.5 * foot_y,
                hip_pt[..., 2] - k_dn,
            ],
            axis=-1,
        )
        ankle_pt = np.stack(
            [hip_pt[..., 0] + a_fwd * fx, foot_y + a_fwd * fy, hip_pt[..., 2] - a_dn], axis=-1
        )
        return knee_pt, ankle_pt

    r_knee, r_ankle = leg_chain(r_hip, hip_r, kn_r, -1.0)
    l_knee, l_ankle = leg_chain(l_hip, hip_l, kn_l, 1.0)
    z = _support_height(p, (phase_r, phase_l), (r_ankle[..., 2], l_ankle[..., 2]), freq)
    lift = z[..., None] * np.array([0.0, 0.0, 1.0])
    pelvis, r_hip, l_hip, r_knee, l_knee, r_ankle, l_ankle = (
        a + lift for a in (pelvis, r_hip, l_hip, r_knee, l_knee, r_ankle, l_ankle)
    )
    # No foot below the ground: lift the whole body when the lower ankle would sink.
    low = np.minimum(r_ankle[..., 2], l_ankle[..., 2]) - c(p.ankle_h)
    lift = np.maximum(-low, 0.0)[..., None] * np.array([0.0, 0.0, 1.0])
    pelvis, r_hip, l_hip, r_knee, l_knee, r_ankle, l_ankle = (
        a + lift for a in (pelvis, r_hip, l_hip, r_knee, l_knee, r_ankle, l_ankle)
    )
    # A hard heel strike: the body drops sharply just after each landing (knees absorb it).
    if np.any(p.impact > 0):
        hit = _bump(phase_r, 0.06, 0.045) + _bump(phase_l, 0.06, 0.045)
        drop = (c(p.impact) * hit)[..., None] * np.array([0.0, 0.0, 1.0])
        pelvis, r_hip, l_hip = (a - drop for a in (pelvis, r_hip, l_hip))
        r_knee, l_knee = (a - 0.5 * drop for a in (r_knee, l_knee))
    bad_stance = np.where(c(p.bad_side) > 0, _bump(phase_l, 0.25, 0.12), _bump(phase_r, 0.25, 0.12))

    # Trunk: forward lean, lateral lean (constant + over the bad leg), counter-rotation.
    lat = c(p.lat_lean) + c(p.bad_side) * 6.0 * DEG * limp * bad_stance
    lat = lat + 0.4 * roll
    t_axes = _frame(-0.8 * yaw, c(p.lean) + 1.5 * DEG * np.sin(2 * cyc), lat)
    neck = _local(pelvis, t_axes, 0.0, 0.0, c(p.torso))
    r_sh = _local(neck, t_axes, -0.01 * c(p.height), -c(p.shoulder_w), c(p.shoulder_lift[:, 0]))
    l_sh = _local(neck, t_axes, -0.01 * c(p.height), c(p.shoulder_w), c(p.shoulder_lift[:, 1]))

    r_el, r_wr = _arm(p, 0, r_sh, t_axes, phase, pelvis, neck)
    l_el, l_wr = _arm(p, 1, l_sh, t_axes, phase, pelvis, neck)

    # Head: pitch about the neck on top of the trunk lean, small yaw wobble.
    h = c(p.height * p.head_scale)
    head_axes = _frame(-0.3 * yaw, c(p.lean + p.head_pitch) + 0.02 * np.sin(2 * cyc), lat)
    nose = _local(neck, head_axes, 0.05 * h, 0.0, 0.085 * h)
    r_eye = _local(neck, head_axes, 0.04 * h, -0.018 * h, 0.1 * h)
    l_eye = _local(neck, head_axes, 0.04 * h, 0.018 * h, 0.1 * h)
    r_ear = _local(neck, head_axes, -0.005 * h, -0.044 * h, 0.09 * h)
    l_ear = _local(neck, head_axes, -0.005 * h, 0.044 * h, 0.09 * h)

    joints = (nose, neck, r_sh, r_el, r_wr, l_sh, l_el, l_wr, r_hip, r_knee, r_ankle, l_hip,
              l_knee, l_ankle, r_eye, l_eye, r_ear, l_ear)  # fmt: skip
    return np.stack(joints, axis=2)


def _arm(
    p: GaitParams,
    k: int,
    shoulder: np.ndarray,
    axes: tuple[np.ndarray, np.ndarray, np.ndarray],
    phase: np.ndarray,
    pelvis: np.ndarray,
    neck: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Elbow and wrist of arm ``k`` (0 right, 1 left): swing or one of the held poses."""
    c = lambda a: a[:, None]  # noqa: E731
    side = -1.0 if k == 0 else 1.0
    pose = p.pose[:, k]
    # Arm swings forward with the opposite leg.
    opp = 0.5 if k == 0 else 0.0
    swing = np.cos(2 * np.pi * (phase - opp + 0.06))
    amp = c(p.arm_amp[:, k])
    amp = amp * np.select(
        [c(pose == HANDBAG), c(pose == SUITCASE), c(pose == CANE)],
        [0.25, 0.05, 0.9],
        default=np.where(c(pose) == SWING, 1.0, 0.08),
    )
    flex = c(p.arm_off[:, k]) + amp * swing + 4.0 * DEG
    flex = flex + np.select(
        [c(pose == SUITCASE), c(pose == CANE), c(pose == PHONE), c(pose == TEXT), c(pose == STRAP)],
        [-28.0 * DEG, 14.0 * DEG, 55.0 * DEG, 12.0 * DEG, 8.0 * DEG],
        default=0.0,
    )
    abd = c(p.abduct[:, k]) + np.select(
        [c(pose == PHONE), c(pose == HANDBAG), c(pose == POCKET), c(pose == SUITCASE)],
        [25.0 * DEG, 6.0 * DEG, 10.0 * DEG, 8.0 * DEG],
        default=0.0,
    )
    ua = c(p.upper_arm)
    fwd, left, up = axes
    e_dir = (
        np.sin(flex)[..., None] * np.cos(abd)[..., None] * fwd
        + side * np.sin(abd)[..., None] * left
        - np.cos(flex)[..., None] * np.cos(abd)[..., None] * up
    )
    elbow = shoulder + ua[..., None] * e_dir
    # Free forearm: bends forward from the upper arm by the elbow angle (more when forward).
    eflex = c(p.elbow[:, k]) + 0.5 * c(p.elbow_swing) * np.maximum(flex, 0.0)
    eflex = np.where(c(pose) == CANE, 25.0 * DEG, eflex)
    eflex = np.where(c(pose) == SUITCASE, 6.0 * DEG, eflex)
    ang = flex + eflex
    f_dir = (
        np.sin(ang)[..., None] * np.cos(abd * 0.5)[..., None] * fwd
        + side * np.sin(abd * 0.5)[..., None] * left
        - np.cos(ang)[..., None] * np.cos(abd * 0.5)[..., None] * up
    )
    # Held poses: the forearm points from the elbow to a target near the body.
    h = c(p.height)
    targets = {
        PHONE: _local(neck, axes, 0.03 * h, side * 0.05 * h, 0.075 * h),
        TEXT: _local(neck, axes, 0.2 * h, side * 0.02 * h, -0.17 * h),
        POCKET: _local(pelvis, axes, 0.04 * h, side * (c(p.hip_w) + 0.035 * h), 0.0),
        STRAP: _local(neck, axes, 0.05 * h, side * 0.08 * h, -0.08 * h),
    }
    for code, target in targets.items():
        mask = (pose == code)[:, None, None]
        if not mask.any():
            continue
        d = target - elbow
        d = d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-6)
        f_dir = np.where(mask, d, f_dir)
    wrist = elbow + c(p.forearm)[..., None] * f_dir
    return elbow, wrist
