"""Each attribute changes the 3D motion the way the README says (means over many walkers)."""

from __future__ import annotations

import numpy as np
import pytest
from gaitsearch.model.render import place_cameras, project
from gaitsearch.model.skeleton import J
from gaitsearch.model.walker import gait_params, simulate

BASE = {
    "gender": "male",
    "age": "adult",
    "build": "average",
    "pace": "normal",
    "footwear": "flat",
    "carrying": "nothing",
    "impairment": "none",
    "energy": "neutral",
    "view": "side",
}
N, T, FPS = 60, 150, 25.0


def walk(seed: int = 0, **changes: str):
    attrs = [{**BASE, **changes}] * N
    params = gait_params(attrs, np.random.default_rng(seed))
    return params, simulate(params, T, FPS)


def jt(joints: np.ndarray, name: str) -> np.ndarray:
    return joints[:, :, J[name]]


def arm_swing(joints: np.ndarray, side: str) -> np.ndarray:
    """Peak-to-peak forward excursion of a wrist relative to the pelvis, per walker."""
    pelvis = 0.5 * (jt(joints, "r_hip") + jt(joints, "l_hip"))
    rel = jt(joints, f"{side}_wrist")[..., 0] - pelvis[..., 0]
    return np.percentile(rel, 95, axis=1) - np.percentile(rel, 5, axis=1)


def forward_lean(joints: np.ndarray) -> np.ndarray:
    pelvis = 0.5 * (jt(joints, "r_hip") + jt(joints, "l_hip"))
    trunk = jt(joints, "neck") - pelvis
    return np.degrees(np.arctan2(trunk[..., 0], trunk[..., 2])).mean(1)


def foot_clearance(params, joints: np.ndarray) -> np.ndarray:
    ankles = np.maximum(jt(joints, "r_ankle")[..., 2], jt(joints, "l_ankle")[..., 2])
    return np.percentile(ankles, 95, axis=1) - params.ankle_h


def test_reference_gait_matches_published_values() -> None:
    params, joints = walk()
    assert 1.2 < params.speed.mean() < 1.5
    assert 100 < params.cadence.mean() < 125
    assert 1.25 < params.stride.mean() < 1.6
    # Vertical excursion of the pelvis: a few centimetres, twice per stride.
    pelvis_z = 0.5 * (jt(joints, "r_hip") + jt(joints, "l_hip"))[..., 2]
    assert 0.025 < np.ptp(pelvis_z, axis=1).mean() < 0.065
    # Walking: a foot is on the ground (heel down or rising) in every frame - no flight.
    low = np.minimum(jt(joints, "r_ankle")[..., 2], jt(joints, "l_ankle")[..., 2])
    airborne = (low - params.ankle_h[:, None]) > 0.05
    assert airborne.mean() < 0.03
    # Arms swing in anti-phase with the legs: right wrist forward when the left ankle is.
    rw = jt(joints, "r_wrist")[..., 0] - jt(joints, "neck")[..., 0]
    la = jt(joints, "l_ankle")[..., 0] - jt(joints, "r_ankle")[..., 0]
    corr = [np.corrcoef(rw[i], la[i])[0, 1] for i in range(N)]
    assert np.mean(corr) > 0.7
    # Upright: head above neck above pelvis above knees above ankles.
    z = joints[..., 2].mean(axis=(0, 1))
    order = ["nose", "neck", "r_hip", "r_knee", "r_ankle"]
    assert all(z[J[a]] > z[J[b]] for a, b in zip(order, order[1:], strict=False))


def test_pace_changes_speed_cadence_and_stride() -> None:
    speeds, cadences, strides = [], [], []
    for pace in ("slow", "normal", "brisk", "running"):
        p, _ = walk(pace=pace)
        speeds.append(p.speed.mean())
        cadences.append(p.cadence.mean())
        strides.append(p.stride.mean())
    assert speeds == sorted(speeds) and cadences == sorted(cadences) and strides == sorted(strides)
    assert 0.8 < speeds[0] < 1.05 and 1.6 < speeds[2] < 1.95 and speeds[3] > 2.3
    assert cadences[3] > 145


def test_running_has_a_flight_phase_and_bent_elbows() -> None:
    params, joints = walk(pace="running")
    low = np.minimum(jt(joints, "r_ankle")[..., 2], jt(joints, "l_ankle")[..., 2])
    airborne = (low - params.ankle_h[:, None]) > 0.05
    assert 0.08 < airborne.mean() < 0.4
    pelvis_z = 0.5 * (jt(joints, "r_hip") + jt(joints, "l_hip"))[..., 2]
    assert 0.05 < np.ptp(pelvis_z, axis=1).mean() < 0.13
    upper = jt(joints, "r_elbow") - jt(joints, "r_shoulder")
    lower = jt(joints, "r_wrist") - jt(joints, "r_elbow")
    cos = (upper * lower).sum(-1) / np.linalg.norm(upper, axis=-1) / np.linalg.norm(lower, axis=-1)
    assert np.degrees(np.arccos(cos)).mean() > 60
    _, walking = walk()
    elbow_swing = lambda j: np.ptp(  # noqa: E731
        jt(j, "r_elbow")[..., 0] - jt(j, "r_shoulder")[..., 0], axis=1
    ).mean()
    assert elbow_swing(joints) > elbow_swing(walking)


def test_heels_shorten_stride_raise_cadence_and_narrow_steps() -> None:
    flat, fj = walk(gender="female")
    heels, hj = walk(gender="female", footwear="heels")
    assert heels.stride.mean() < 0.88 * flat.stride.mean()
    assert heels.cadence.mean() > 1.05 * flat.cadence.mean()
    assert heels.list.mean() > 1.4 * flat.list.mean() and heels.rot.mean() > 1.4 * flat.rot.mean()
    width = lambda j: np.abs(jt(j, "r_ankle")[..., 1] - jt(j, "l_ankle")[..., 1]).mean()  # noqa: E731
    assert width(hj) < 0.6 * width(fj)


def test_boots_lift_the_feet_tired_shuffles() -> None:
    p0, j0 = walk()
    pb, jb = walk(footwear="boots")
    pt, jtired = walk(energy="tired")
    assert foot_clearance(pb, jb).mean() > 1.1 * foot_clearance(p0, j0).mean()
    assert foot_clearance(pt, jtired).mean() < 0.8 * foot_clearance(p0, j0).mean()
    assert forward_lean(jtired).mean() > forward_lean(j0).mean() + 4
    assert pt.speed.mean() < 0.9 * p0.speed.mean()


def test_age_groups() -> None:
    pa, ja = walk()
    pe, je = walk(age="elderly")
    pc, _ = walk(age="child")
    assert pe.speed.mean() < 0.85 * pa.speed.mean() and 0.9 < pe.speed.mean() < 1.2
    assert forward_lean(je).mean() > forward_lean(ja).mean() + 5
    assert arm_swing(je, "r").mean() < 0.75 * arm_swing(ja, "r").mean()
    assert pc.height.mean() < 1.5 and pc.cadence.mean() > pa.cadence.mean() + 5


def test_gender_and_build_change_proportions() -> None:
    pm, _ = walk()
    pf, _ = walk(gender="female")
    ph, jh = walk(build="heavy")
    _, j0 = walk()
    assert (pf.hip_w / pf.shoulder_w).mean() > 1.15 * (pm.hip_w / pm.shoulder_w).mean()
    assert pf.sway.mean() > 1.2 * pm.sway.mean()
    step = lambda j: np.abs(jt(j, "r_ankle")[..., 1] - jt(j, "l_ankle")[..., 1]).mean()  # noqa: E731
    assert step(jh) > 1.3 * step(j0)
    assert ph.shoulder_w.mean() > 1.1 * pm.shoulder_w.mean()


def _wrist_roles(joints: np.ndarray, params, code: int) -> tuple[np.ndarray, np.ndarray]:
    """(busy wrist, free wrist) tracks for walkers whose arm holds ``code``."""
    busy = np.where(params.pose[:, 0] == code, 0, 1)
    names = np.array([J["r_wrist"], J["l_wrist"]])
    idx = np.arange(len(busy))
    return joints[idx, :, names[busy]], joints[idx, :, names[1 - busy]]


def test_carrying_poses() -> None:
    from gaitsearch.model import walker

    _, j0 = walk()
    # Texting: head bent down, both hands in front of the chest, no arm swing.
    pt, jtx = walk(carrying="texting")
    head = lambda j: np.degrees(  # noqa: E731
        np.arctan2((jt(j, "nose") - jt(j, "neck"))[..., 0], (jt(j, "nose") - jt(j, "neck"))[..., 2])
    ).mean()
    assert head(jtx) > head(j0) + 20
    for side in ("r", "l"):
        assert arm_swing(jtx, side).mean() < 0.3 * arm_swing(j0, side).mean()
        ahead = jt(jtx, f"{side}_wrist")[..., 0] - jt(jtx, "neck")[..., 0]
        assert ahead.mean() > 0.2
    # Phone call: one hand at the head.
    pp, jp = walk(carrying="phone_call")
    busy, free = _wrist_roles(jp, pp, walker.PHONE)
    assert np.linalg.norm(busy - jt(jp, "nose"), axis=-1).mean() < 0.2
    assert np.linalg.norm(free - jt(jp, "nose"), axis=-1).mean() > 0.5
    # Suitcase: one arm back and still.
    ps, js = walk(carrying="suitcase")
    busy, free = _wrist_roles(js, ps, walker.SUITCASE)
    pelvis = 0.5 * (jt(js, "r_hip") + jt(js, "l_hip"))
    assert (busy[..., 0] - pelvis[..., 0]).mean() < -0.12
    still = (busy[..., 0] - pelvis[..., 0]).std(1).mean()
    assert still < 0.3 * (free[..., 0] - pelvis[..., 0]).std(1).mean()
    # Handbag: the bag arm barely swings, the trunk leans away from it.
    ph, jhb = walk(carrying="handbag")
    bag_right = ph.pose[:, 0] == walker.HANDBAG
    swing_r, swing_l = arm_swing(jhb, "r"), arm_swing(jhb, "l")
    bag_swing = np.where(bag_right, swing_r, swing_l)
    free_swing = np.where(bag_right, swing_l, swing_r)
    assert bag_swing.mean() < 0.5 * free_swing.mean()
    lean_left = (jt(jhb, "neck") - pelvis)[..., 1].mean(1)
    assert np.mean(np.where(bag_right, lean_left > 0, lean_left < 0)) > 0.8
    # Hands in pockets: wrists at the hips, no swing.
    _, jpk = walk(carrying="hands_in_pockets")
    assert arm_swing(jpk, "r").mean() < 0.3 * arm_swing(j0, "r").mean()
    hip_gap = np.linalg.norm(jt(jpk, "r_wrist") - jt(jpk, "r_hip"), axis=-1).mean()
    assert hip_gap < 0.2
    # Backpack: forward lean.
    _, jb = walk(carrying="backpack")
    assert forward_lean(jb).mean() > forward_lean(j0).mean() + 3


def _step_timing_asymmetry(joints: np.ndarray) -> np.ndarray:
    """|fraction of time the right ankle is ahead - 0.5|: 0 for symmetric stepping."""
    ahead = jt(joints, "r_ankle")[..., 0] > jt(joints, "l_ankle")[..., 0]
    return np.abs(ahead.mean(1) - 0.5)


def test_limp_and_cane() -> None:
    p0, j0 = walk()
    pl, jl = walk(impairment="limp")
    pc, jc = walk(impairment="cane")
    assert _step_timing_asymmetry(jl).mean() > _step_timing_asymmetry(j0).mean() + 0.03
    assert pl.speed.mean() < 0.9 * p0.speed.mean()
    assert pc.speed.mean() < 0.75 * p0.speed.mean()
    # The cane hand is held forward and stays low.
    from gaitsearch.model import walker

    cane_right = pc.pose[:, 0] == walker.CANE
    assert np.all(cane_right | (pc.pose[:, 1] == walker.CANE))
    cane_wrist, _ = _wrist_roles(jc, pc, walker.CANE)
    assert (cane_wrist[..., 0] - jt(jc, "neck")[..., 0]).mean() > 0.05
    # Cane in the hand opposite the bad leg.
    assert np.all(np.where(cane_right, pc.bad_side > 0, pc.bad_side < 0))


def test_confident_walks_tall_with_big_strides_and_swing() -> None:
    p0, j0 = walk()
    pc, jc = walk(energy="confident")
    assert pc.stride.mean() > 1.05 * p0.stride.mean()
    assert arm_swing(jc, "r").mean() > 1.2 * arm_swing(j0, "r").mean()
    assert forward_lean(jc).mean() < forward_lean(j0).mean()


def test_people_with_the_same_attributes_differ() -> None:
    params, joints = walk()
    assert params.height.std() > 0.03 and params.speed.std() > 0.03
    swing_r, swing_l = arm_swing(joints, "r"), arm_swing(joints, "l")
    assert np.abs(swing_r - swing_l).mean() > 0.01  # left/right asymmetry
    assert np.abs(joints[0] - joints[1]).max() > 0.05


@pytest.mark.parametrize("view", ["front", "back", "side", "oblique"])
def test_views_project_as_expected(view: str) -> None:
    params, joints = walk(view=view)
    rng = np.random.default_rng(0)
    cams = place_cameras([view] * N, params.speed * T / FPS, rng)
    pixels, depth = project(joints, cams)
    height = pixels[:, :, J["r_ankle"], 1] - pixels[:, :, J["nose"], 1]
    assert (height > 0).all()  # y down: head above feet
    growth = height[:, -10:].mean(1) / height[:, :10].mean(1)
    across = np.abs(pixels[:, -1, J["neck"], 0] - pixels[:, 0, J["neck"], 0]) / height.mean(1)
    if view == "front":  # walks toward the camera: grows
        assert (growth > 1.15).all()
    elif view == "back":  # walks away: shrinks
        assert (growth < 0.87).all()
    elif view == "side":  # crosses the image at a roughly constant size
        assert (np.abs(growth - 1) < 0.3).all() and (across > 1.0).all()
    assert (depth > 1.0).all()


# --- walking styles (issue F): each value vs a default walker with the same seed -------------


def pelvis_of(joints: np.ndarray) -> np.ndarray:
    return 0.5 * (jt(joints, "r_hip") + jt(joints, "l_hip"))


def head_drop(joints: np.ndarray) -> np.ndarray:
    """Head pitch down (deg): the nose below the ears' midpoint, per walker."""
    ears = 0.5 * (jt(joints, "r_ear") + jt(joints, "l_ear"))
    d = jt(joints, "nose") - ears
    return np.degrees(np.arctan2(-d[..., 2], d[..., 0])).mean(1)


def elbow_angle(joints: np.ndarray, side: str = "r") -> np.ndarray:
    """Elbow flexion (deg) at each frame: 0 = straight arm."""
    ua = jt(joints, f"{side}_elbow") - jt(joints, f"{side}_shoulder")
    fa = jt(joints, f"{side}_wrist") - jt(joints, f"{side}_elbow")
    cos = (ua * fa).sum(-1) / (np.linalg.norm(ua, axis=-1) * np.linalg.norm(fa, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def ankle_reach(joints: np.ndarray) -> np.ndarray:
    """Peak-to-peak fore-aft excursion of an ankle relative to the pelvis."""
    rel = jt(joints, "r_ankle")[..., 0] - pelvis_of(joints)[..., 0]
    return np.ptp(rel, axis=1)


def lateral_wander(joints: np.ndarray) -> np.ndarray:
    """Step-to-step irregularity of the pelvis' lateral path: the std of its y once the
    regular sway (one sine per stride) is averaged out over a stride window."""
    y = pelvis_of(joints)[..., 1]
    k = 28  # about one stride at 25 fps
    kernel = np.ones(k) / k
    smooth = np.stack([np.convolve(row, kernel, mode="valid") for row in y])
    return smooth.std(axis=1)


def mean_gap(changed: np.ndarray, default: np.ndarray) -> float:
    return float(np.mean(changed - default))


def test_default_style_values_change_nothing() -> None:
    _, plain = walk(3)
    _, styled = walk(
        3, emotion="neutral", posture="normal", step="normal", arm_swing="normal", style="none"
    )
    np.testing.assert_array_equal(plain, styled)


def test_emotions() -> None:
    p0, j0 = walk(4)
    p, j = walk(4, emotion="sad")
    assert mean_gap(head_drop(j), head_drop(j0)) > 8.0
    assert np.mean(arm_swing(j, "r") / arm_swing(j0, "r")) < 0.75
    assert np.mean(p.speed / p0.speed) < 0.9
    p, j = walk(4, emotion="happy")
    assert np.mean(p.speed / p0.speed) > 1.04
    assert np.mean(arm_swing(j, "r") / arm_swing(j0, "r")) > 1.2
    p, j = walk(4, emotion="angry")
    assert np.mean(p.speed / p0.speed) > 1.05
    assert mean_gap(elbow_angle(j).mean(1), elbow_angle(j0).mean(1)) > 12.0
    # Heavy-footed: a sharp drop of the body at each heel strike.
    bob = lambda x: np.ptp(pelvis_of(x)[..., 2], axis=1)  # noqa: E731
    assert mean_gap(bob(j), bob(j0)) > 0.012
    _, j = walk(4, emotion="proud")
    assert mean_gap(forward_lean(j), forward_lean(j0)) < -2.0
    assert mean_gap(head_drop(j), head_drop(j0)) < -4.0
    p, j = walk(4, emotion="fearful")
    assert np.mean(p.speed / p0.speed) < 0.95
    assert mean_gap(elbow_angle(j).mean(1), elbow_angle(j0).mean(1)) > 15.0


def test_postures() -> None:
    _, j0 = walk(5)
    _, j = walk(5, posture="hunched")
    assert mean_gap(forward_lean(j), forward_lean(j0)) > 7.0
    _, j = walk(5, posture="upright")
    assert mean_gap(forward_lean(j), forward_lean(j0)) < -1.5
    _, j = walk(5, posture="head_down")
    assert mean_gap(head_drop(j), head_drop(j0)) > 12.0
    assert abs(mean_gap(forward_lean(j), forward_lean(j0))) < 0.5


def test_steps() -> None:
    p0, j0 = walk(6)
    p, j = walk(6, step="long_strides")
    assert np.mean(p.stride / p0.stride) > 1.12
    assert np.mean(ankle_reach(j) / ankle_reach(j0)) > 1.08
    p, j = walk(6, step="short_steps")
    assert np.mean(p.stride / p0.stride) < 0.88 and np.mean(p.cadence / p0.cadence) > 1.05
    p, j = walk(6, step="shuffling")
    assert np.mean(foot_clearance(p, j) / foot_clearance(p0, j0)) < 0.7
    assert np.mean(p.stride / p0.stride) < 0.85
    _, j = walk(6, step="on_toes")
    low = lambda x: np.minimum(jt(x, "r_ankle")[..., 2], jt(x, "l_ankle")[..., 2]).min(1)  # noqa: E731
    assert mean_gap(low(j), low(j0)) > 0.03
    _, j = walk(6, step="bouncy")
    bob = lambda x: np.ptp(pelvis_of(x)[..., 2], axis=1)  # noqa: E731
    assert np.mean(bob(j) / bob(j0)) > 1.4
    _, j = walk(6, step="stomping")
    assert mean_gap(bob(j), bob(j0)) > 0.012


def test_arm_swings() -> None:
    _, j0 = walk(7)
    _, j = walk(7, arm_swing="wide")
    assert np.mean(arm_swing(j, "l") / arm_swing(j0, "l")) > 1.4
    _, j = walk(7, arm_swing="stiff")
    assert np.mean(arm_swing(j, "l") / arm_swing(j0, "l")) < 0.6
    change = lambda x: np.ptp(elbow_angle(x, "l"), axis=1)  # noqa: E731
    assert np.mean(change(j)) < 0.5 * np.mean(change(j0))
    assert mean_gap(elbow_angle(j, "l").mean(1), elbow_angle(j0, "l").mean(1)) < -4.0
    _, j = walk(7, arm_swing="none")
    assert np.mean(arm_swing(j, "l") / arm_swing(j0, "l")) < 0.2


def test_styles() -> None:
    p0, j0 = walk(8)
    _, j = walk(8, style="hip_sway")
    side = lambda x: np.ptp(pelvis_of(x)[..., 1], axis=1)  # noqa: E731
    assert np.mean(side(j) / side(j0)) > 1.4
    _, j = walk(8, style="staggering")
    assert np.mean(lateral_wander(j)) > 3 * np.mean(lateral_wander(j0))
    assert np.mean(lateral_wander(j)) > 0.03
    _, j = walk(8, style="marching")
    knee = lambda x: np.maximum(jt(x, "r_knee")[..., 2], jt(x, "l_knee")[..., 2]).max(1)  # noqa: E731
    assert mean_gap(knee(j), knee(j0)) > 0.04
    assert np.mean(np.ptp(elbow_angle(j), axis=1)) < 0.5 * np.mean(np.ptp(elbow_angle(j0), axis=1))
    p, j = walk(8, style="sneaking")
    assert np.mean(p.speed / p0.speed) < 0.8 and np.mean(p.cadence / p0.cadence) < 0.8
    hip_ankle = lambda x: np.linalg.norm(jt(x, "r_hip") - jt(x, "r_ankle"), axis=-1).mean(1)  # noqa: E731
    assert np.mean(hip_ankle(j) / hip_ankle(j0)) < 0.97
    assert mean_gap(forward_lean(j), forward_lean(j0)) > 6.0
    _, j = walk(8, style="swagger")
    assert np.mean(arm_swing(j, "r") / arm_swing(j0, "r")) > 1.1


def test_lively_energy() -> None:
    p0, _ = walk(9)
    p, _ = walk(9, energy="lively")
    assert np.mean(p.speed / p0.speed) > 1.04


def test_walkers_of_one_style_differ_in_intensity() -> None:
    """Two sad walkers are not one template: the effect size varies per walker."""
    p0, _ = walk(10)
    p, _ = walk(10, emotion="sad")
    extra = np.degrees(p.head_pitch - p0.head_pitch)  # same seed: same base jitter
    assert extra.std() > 2.0 and extra.min() > 0.0
    assert 12.0 < extra.mean() < 22.0
