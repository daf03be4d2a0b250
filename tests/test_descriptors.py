"""Measured gait descriptors on synthetic walkers whose true parameters are known."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from gaitsearch.model import descriptors as D
from gaitsearch.model.render import detect, place_cameras, project
from gaitsearch.model.walker import GaitParams, gait_params, simulate

FPS = 25.0
COL = {name: i for i, name in enumerate(D.DESCRIPTORS)}


def _attrs(pace: str = "normal", view: str = "side") -> dict[str, str]:
    return {
        "gender": "male",
        "age": "adult",
        "build": "average",
        "pace": pace,
        "footwear": "flat",
        "carrying": "nothing",
        "impairment": "none",
        "energy": "neutral",
        "view": view,
    }


def _film(params: GaitParams, view: str, frames: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    n = params.batch
    joints = simulate(params, frames, FPS)
    cams = place_cameras([view] * n, params.speed * frames / FPS, rng)
    pixels, _ = project(joints, cams)
    return list(detect(pixels, joints, cams, rng))


def _walkers(
    n: int, pace: str = "normal", view: str = "side", frames: int = 90, seed: int = 0
) -> tuple[GaitParams, list[np.ndarray]]:
    params = gait_params([_attrs(pace, view)] * n, np.random.default_rng(seed))
    return params, _film(params, view, frames, seed + 1)


@pytest.fixture(scope="module")
def side() -> tuple[GaitParams, np.ndarray, list[np.ndarray]]:
    params, seqs = _walkers(16)
    return params, D.measure_many(seqs, FPS), seqs


def test_names_units_shapes_and_dtypes(side: tuple[GaitParams, np.ndarray, list]) -> None:
    params, got, seqs = side
    assert D.DESCRIPTORS[:3] == ("speed", "cadence", "stride")
    assert set(D.UNITS) == set(D.ABOUT) == set(D.DESCRIPTORS)
    assert got.shape == (16, len(D.DESCRIPTORS)) and got.dtype == np.float32
    one = D.measure(seqs[0], FPS)
    assert one.shape == (len(D.DESCRIPTORS),) and one.dtype == np.float32
    np.testing.assert_array_equal(one, got[0])
    assert D.measure_many([], FPS).shape == (0, len(D.DESCRIPTORS))


def test_side_view_speed_cadence_stride_match_the_walker(
    side: tuple[GaitParams, np.ndarray, list],
) -> None:
    params, got, _ = side
    speed = params.speed / params.height
    stride = params.stride / params.height
    assert np.isfinite(got[:, [COL["speed"], COL["cadence"], COL["stride"]]]).all()
    assert np.median(np.abs(got[:, COL["speed"]] / speed - 1)) < 0.08
    assert np.abs(got[:, COL["cadence"]] - params.cadence).max() < 6.0
    assert np.median(np.abs(got[:, COL["stride"]] / stride - 1)) < 0.1
    # Side view: the sagittal plane is visible, the lateral sway is not.
    for name in ("arm_swing", "trunk_lean", "head_pitch", "foot_clearance", "bounce"):
        assert np.isfinite(got[:, COL[name]]).all(), name
    assert np.isnan(got[:, COL["sway"]]).all()
    lean = np.degrees(params.lean)
    assert np.median(np.abs(got[:, COL["trunk_lean"]] - lean)) < 2.0


def test_brisk_walker_faster_and_long_strides_longer() -> None:
    _, slow = _walkers(6, "slow", seed=3)
    _, brisk = _walkers(6, "brisk", seed=3)
    s, b = D.measure_many(slow, FPS), D.measure_many(brisk, FPS)
    assert np.all(b[:, COL["speed"]] > s[:, COL["speed"]])
    assert np.all(b[:, COL["cadence"]] > s[:, COL["cadence"]])
    params = gait_params([_attrs()] * 6, np.random.default_rng(5))
    long = dataclasses.replace(params, stride=params.stride * 1.3)
    normal_d = D.measure_many(_film(params, "side", 90, 6), FPS)
    long_d = D.measure_many(_film(long, "side", 90, 6), FPS)
    assert np.all(long_d[:, COL["stride"]] > normal_d[:, COL["stride"]] * 1.15)
    assert np.all(long_d[:, COL["cadence"]] < normal_d[:, COL["cadence"]])


def test_frontal_view_gives_nan_for_what_it_cannot_see() -> None:
    for view in ("front", "back"):
        _, seqs = _walkers(6, view=view, seed=11)
        got = D.measure_many(seqs, FPS)
        assert [D.view_of(s) for s in seqs].count("frontal") >= 5
        for name in ("speed", "stride", "trunk_lean", "arm_swing", "foot_clearance"):
            assert np.isnan(got[:, COL[name]]).mean() >= 5 / 6, (view, name)
        assert np.isfinite(got[:, COL["cadence"]]).all()
        assert np.isfinite(got[:, COL["sway"]]).all()


def test_ten_percent_missing_joints_change_little(
    side: tuple[GaitParams, np.ndarray, list],
) -> None:
    params, intact, seqs = side
    rng = np.random.default_rng(9)
    damaged = []
    for s in seqs:
        s = s.copy()
        s[rng.random(s.shape[:2]) < 0.1] = 0.0
        damaged.append(s)
    got = D.measure_many(damaged, FPS)
    assert np.isfinite(got[:, [COL["speed"], COL["cadence"]]]).all()
    assert np.abs(got[:, COL["cadence"]] - params.cadence).max() < 6.0
    assert np.median(np.abs(got[:, COL["speed"]] / intact[:, COL["speed"]] - 1)) < 0.05
    # NaN coordinates are missing joints too.
    nan_seq = seqs[0].copy()
    nan_seq[::7, 4, :2] = np.nan
    assert np.isfinite(D.measure(nan_seq, FPS)[COL["cadence"]])


def test_frozen_short_and_empty_clips_give_nan_not_garbage(
    side: tuple[GaitParams, np.ndarray, list],
) -> None:
    _, _, seqs = side
    frozen = np.repeat(seqs[0][:1], 64, axis=0)
    got = D.measure(frozen, FPS)
    for name in ("cadence", "stride", "speed", "arm_swing", "bounce", "step_asymmetry"):
        assert np.isnan(got[COL[name]]) or got[COL[name]] == 0, name
    short = D.measure(seqs[0][:18], FPS)  # 0.7 s: under one gait cycle
    assert np.isnan(short[COL["cadence"]]) and np.isnan(short[COL["stride"]])
    assert np.isnan(D.measure(np.zeros((64, 18, 3), np.float32), FPS)).all()
    assert np.isnan(D.measure(seqs[0], 0.0)).all()


def test_y_up_copies_measure_the_same(side: tuple[GaitParams, np.ndarray, list]) -> None:
    _, intact, seqs = side
    flipped = seqs[1].copy()
    flipped[..., 1] *= -1
    np.testing.assert_allclose(D.measure(flipped, FPS), intact[1], rtol=1e-4, atol=1e-4)


def test_view_of_tells_side_from_frontal(side: tuple[GaitParams, np.ndarray, list]) -> None:
    _, _, seqs = side
    assert [D.view_of(s) for s in seqs].count("side") >= 15


def test_oblique_view_measures_speed_and_sway() -> None:
    params, seqs = _walkers(12, view="oblique", seed=21)
    got = D.measure_many(seqs, FPS)
    speed = params.speed / params.height
    ok = np.isfinite(got[:, COL["speed"]])
    assert ok.mean() >= 0.75
    assert np.median(np.abs(got[ok, COL["speed"]] / speed[ok] - 1)) < 0.15
    assert np.abs(got[:, COL["cadence"]] - params.cadence).max() < 6.0
    assert np.isfinite(got[:, COL["sway"]]).mean() >= 0.75


def test_standing_person_under_detector_jitter_has_no_cadence() -> None:
    params = gait_params([_attrs()] * 12, np.random.default_rng(31))
    still = dataclasses.replace(params, speed=params.speed * 1e-6)  # a frozen pose
    for view in ("side", "front"):
        got = D.measure_many(_film(still, view, 90, 32), FPS)
        assert np.isnan(got[:, COL["cadence"]]).all(), view
        assert np.isnan(got[:, COL["speed"]]).all(), view


def test_left_right_swaps_of_a_pose_estimator_are_undone(
    side: tuple[GaitParams, np.ndarray, list],
) -> None:
    params, intact, seqs = side
    swapped = []
    for k, s in enumerate(seqs):
        s = s.copy()
        for start in (10 + k, 40 + k, 70):  # runs of 4 frames with the legs' labels swapped
            run = s[start : start + 4]
            run[:, [8, 9, 10, 11, 12, 13]] = run[:, [11, 12, 13, 8, 9, 10]]
        swapped.append(s)
    got = D.measure_many(swapped, FPS)
    assert np.abs(got[:, COL["cadence"]] - params.cadence).max() < 6.0
    assert (
        np.median(np.abs(got[:, COL["foot_clearance"]] / intact[:, COL["foot_clearance"]] - 1))
        < 0.1
    )


def test_long_tracklet_is_measured_on_its_middle() -> None:
    params, seqs = _walkers(2, frames=400, seed=41)
    got = D.measure_many(seqs, FPS)
    assert np.abs(got[:, COL["cadence"]] - params.cadence).max() < 4.0
    middle = D.measure(seqs[0][50:350], FPS)
    np.testing.assert_allclose(got[0], middle, rtol=1e-5, atol=1e-6)


def test_feet_out_of_the_picture_fall_back_on_the_knees(
    side: tuple[GaitParams, np.ndarray, list],
) -> None:
    params, intact, seqs = side
    cut = []
    for s in seqs:
        s = s.copy()
        s[:, [10, 13]] = 0.0  # no ankle in any frame
        cut.append(s)
    got = D.measure_many(cut, FPS)
    assert np.abs(got[:, COL["cadence"]] - params.cadence).max() < 6.0
    assert np.median(np.abs(got[:, COL["speed"]] / intact[:, COL["speed"]] - 1)) < 0.08
    assert np.isnan(got[:, COL["foot_clearance"]]).all()


def test_too_low_a_frame_rate_gives_no_cycle_descriptors(
    side: tuple[GaitParams, np.ndarray, list],
) -> None:
    _, _, seqs = side
    got = D.measure(seqs[0][::5], FPS / 5)  # 5 fps: steps alias
    assert np.isnan(got[COL["cadence"]]) and np.isnan(got[COL["bounce"]])
    assert np.isfinite(got[COL["speed"]])


def test_a_camera_looking_down_steeply_does_not_inflate_speed() -> None:
    """Side view from 5 m up, 6 m away (34 degrees down): heights shrink by cos(34) = 0.83."""
    params = gait_params([_attrs()] * 8, np.random.default_rng(51))
    frames = 90
    rng = np.random.default_rng(52)
    path = params.speed * frames / FPS
    cams = place_cameras(["side"] * 8, path, rng)
    mid = np.stack([path / 2, np.zeros(8), np.zeros(8)], axis=-1)
    side = np.sign(cams.position[:, 1] - mid[:, 1])
    cams.position = mid + np.stack([np.zeros(8), 6.0 * side, np.full(8, 5.0)], axis=-1)
    forward = mid + np.array([0.0, 0.0, 1.0]) - cams.position
    cams.forward = forward / np.linalg.norm(forward, axis=-1, keepdims=True)
    right = np.cross(cams.forward, np.array([0.0, 0.0, 1.0]))
    cams.right = right / np.linalg.norm(right, axis=-1, keepdims=True)
    cams.down = np.cross(cams.forward, cams.right)
    cams.width[:], cams.height[:] = 1920.0, 1080.0
    cams.focal[:] = 1000.0
    joints = simulate(params, frames, FPS)
    pixels, _ = project(joints, cams)
    got = D.measure_many(list(detect(pixels, joints, cams, rng)), FPS)
    speed = params.speed / params.height
    assert np.median(np.abs(got[:, COL["speed"]] / speed - 1)) < 0.07
    assert np.median(np.abs(got[:, COL["trunk_lean"]] - np.degrees(params.lean))) < 2.0


def test_gap_filling_only_touches_columns_with_gaps_and_matches_full_interpolation():
    """``_fill`` computes only the columns with a gap; every value equals the plain linear
    interpolation over all columns (what it did before), ends and never-seen joints too."""
    from gaitsearch.model.descriptors import _fill

    def reference(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
        t = x.shape[0]
        idx = np.arange(t).reshape((t,) + (1,) * (x.ndim - 1))
        prev = np.maximum.accumulate(np.where(valid, idx, -1), axis=0)
        nxt = np.minimum.accumulate(np.where(valid, idx, t)[::-1], axis=0)[::-1]
        lo = np.where(prev >= 0, prev, nxt)
        hi = np.where(nxt < t, nxt, prev)
        never = lo >= t
        lo, hi = np.clip(lo, 0, t - 1), np.clip(hi, 0, t - 1)
        xl, xh = np.take_along_axis(x, lo, 0), np.take_along_axis(x, hi, 0)
        w = np.where(hi > lo, (idx - lo) / np.maximum(hi - lo, 1), 0.0)
        return np.where(never, np.nan, xl + (xh - xl) * w)

    rng = np.random.default_rng(3)
    for p_missing in (0.0, 0.1, 0.6):
        x = rng.normal(size=(57, 18, 2)) * 100
        valid = rng.random((57, 18, 1)) >= p_missing
        valid[:, 4] = False  # a joint never seen
        x = np.where(valid, x, np.nan)
        got, want = _fill(x, valid), reference(x, np.broadcast_to(valid, x.shape))
        assert np.array_equal(got, want, equal_nan=True)


def test_batched_measurement_equals_the_walk_by_walk_one(
    side: tuple[GaitParams, np.ndarray, list],
) -> None:
    """``measure_many`` (a batch at a time) gives what ``measure`` gives walk by walk, over
    clips that take every branch: views, lengths, frame rates, missing joints, y up, feet out
    of the picture, swapped legs, frozen and too-short clips; and most clean walks really are
    measured in a batch (not all handed back to the per-walk code)."""
    from gaitsearch.model import descriptors_batch as B

    _, _, seqs = side
    clips: list[np.ndarray] = list(seqs)
    rates: list[float] = [FPS] * len(seqs)
    for k, view in enumerate(("front", "oblique", "back")):
        _, more = _walkers(6, pace=("slow", "brisk", "normal")[k], view=view, frames=70 + 20 * k)
        clips += more
        rates += [(25.0, 30.0, 25.0)[k]] * len(more)
    rng = np.random.default_rng(3)
    for s in seqs[:4]:
        damaged = s.copy()
        damaged[rng.random(s.shape[:2]) < 0.15] = 0.0
        flipped = s.copy()
        flipped[..., 1] *= -1
        feet = s.copy()
        feet[:, [10, 13]] = 0.0
        swapped = s.copy()
        swapped[20:24, [8, 9, 10, 11, 12, 13]] = swapped[20:24, [11, 12, 13, 8, 9, 10]]
        clips += [damaged, flipped, feet, swapped, np.repeat(s[:1], 64, axis=0), s[:18]]
        rates += [FPS] * 6
    clips += [seqs[0][::5], np.zeros((64, 18, 3), np.float32), seqs[1][:, :, :2]]
    rates += [FPS / 5, FPS, FPS]

    got = D.measure_many(clips, rates)
    want = np.stack([D.measure(c, r) for c, r in zip(clips, rates, strict=True)])
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    cut = np.stack([B._cut(s) for s in seqs[:16]])
    _, batched = B._measure_group(cut, FPS)
    assert batched.mean() >= 0.75


def test_a_slow_walk_in_a_two_second_window_gets_its_cadence_when_periodic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A slow walk holds fewer than 1.5 gait cycles in 48 frames (1.9 s) at 25
    # fps; a clean periodic separation still gives its cadence, and the batch path agrees.
    params, seqs = _walkers(24, "slow", frames=48, seed=21)
    cycles = params.cadence / 120 * 47 / FPS
    assert (cycles < D.MIN_CYCLES).sum() >= 8
    got = D.measure_many(seqs, FPS)
    cad = got[:, COL["cadence"]]
    short = cycles < D.MIN_CYCLES
    assert np.isfinite(cad[short]).sum() >= 4
    ok = np.isfinite(cad)
    assert np.abs(cad[ok] - params.cadence[ok]).max() < 6.0
    assert np.isfinite(got[ok, COL["stride"]]).all()
    np.testing.assert_array_equal(np.stack([D.measure(s, FPS) for s in seqs]), got)
    # without the periodicity clause fewer of the same short clips have one
    monkeypatch.setattr(D, "MIN_SHORT_PERIODICITY", np.inf)
    again = D.measure_many(seqs, FPS)[:, COL["cadence"]]
    assert np.isfinite(again[short]).sum() <= np.isfinite(cad[short]).sum() - 3
