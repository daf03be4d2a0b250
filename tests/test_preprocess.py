"""Preprocessing: normalisation invariances (hypothesis), flips, resampling, dropout."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import walking_like
from gaitsearch.model import preprocess as P
from gaitsearch.model.preprocess import (
    PreprocessConfig,
    body_height,
    flip_lr,
    joint_dropout,
    normalise,
    prepare_batch,
    resample,
    vary_widths,
)
from gaitsearch.model.skeleton import FLIP_PERMUTATION, J
from hypothesis import given, settings
from hypothesis import strategies as st


def _sequence(seed: int, frames: int = 30, missing: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    seq = walking_like(rng, frames)
    if missing:
        drop = rng.random(seq.shape[:2]) < missing
        seq[drop] = 0.0
    return seq


# A local setting, not a global profile: other test files use hypothesis too.
fast = settings(max_examples=40, deadline=None)

seeds = st.integers(0, 10_000)
offsets = st.floats(-2000, 2000, allow_nan=False)
scales = st.floats(0.2, 8.0, allow_nan=False)


@fast
@given(seed=seeds, dx=offsets, dy=offsets, missing=st.sampled_from([0.0, 0.1]))
def test_normalise_is_translation_invariant(
    seed: int, dx: float, dy: float, missing: float
) -> None:
    seq = _sequence(seed, missing=missing)
    moved = seq.copy()
    present = moved[..., 2] > 0
    moved[..., 0] = np.where(present, moved[..., 0] + dx, 0.0)
    moved[..., 1] = np.where(present, moved[..., 1] + dy, 0.0)
    np.testing.assert_allclose(normalise(moved), normalise(seq), atol=2e-3)


@fast
@given(seed=seeds, scale=scales)
def test_normalise_is_scale_invariant(seed: int, scale: float) -> None:
    """Camera distance (a uniform scale about any point) does not change the result."""
    seq = _sequence(seed)
    far = seq.copy()
    far[..., :2] *= scale
    np.testing.assert_allclose(normalise(far), normalise(seq), atol=2e-3)
    assert body_height(far) == pytest.approx(body_height(seq) * scale, rel=1e-4)


@fast
@given(seed=seeds)
def test_normalise_centres_pelvis_and_unit_height(seed: int) -> None:
    out = normalise(_sequence(seed))
    pelvis = out[:, [J["r_hip"], J["l_hip"]], :2].mean(axis=(0, 1))
    np.testing.assert_allclose(pelvis, 0.0, atol=1e-3)
    assert body_height(out) == pytest.approx(1.0, rel=1e-3)


def test_normalise_zeroes_missing_joints() -> None:
    seq = _sequence(1)
    seq[3, J["l_wrist"]] = (123.0, 456.0, 0.0)
    out = normalise(seq)
    assert (out[3, J["l_wrist"]] == 0).all()
    assert (out[3, J["r_wrist"], :2] != 0).any()


def test_normalise_without_scale_keeps_pixels() -> None:
    seq = _sequence(2)
    out = normalise(seq, PreprocessConfig(scale_normalise=False))
    span = np.ptp(out[..., 1][seq[..., 2] > 0])
    assert span == pytest.approx(np.ptp(seq[..., 1][seq[..., 2] > 0]), rel=1e-5)


@fast
@given(seed=seeds)
def test_flip_twice_is_identity(seed: int) -> None:
    seq = normalise(_sequence(seed))
    np.testing.assert_array_equal(flip_lr(flip_lr(seq)), seq)


def test_flip_swaps_left_and_right_and_mirrors_x() -> None:
    seq = normalise(_sequence(3))
    flipped = flip_lr(seq)
    for a, b in (("r_wrist", "l_wrist"), ("r_ankle", "l_ankle"), ("r_eye", "l_eye")):
        np.testing.assert_array_equal(flipped[:, J[a], 0], -seq[:, J[b], 0])
        np.testing.assert_array_equal(flipped[:, J[a], 1:], seq[:, J[b], 1:])
    np.testing.assert_array_equal(flipped[:, J["neck"], 0], -seq[:, J["neck"], 0])
    assert sorted(FLIP_PERMUTATION) == list(range(18))
    assert all(FLIP_PERMUTATION[FLIP_PERMUTATION[i]] == i for i in range(18))


@fast
@given(
    frames=st.integers(8, 200),
    fps=st.sampled_from([12.5, 25.0, 30.0, 60.0]),
    n=st.integers(4, 64),
    training=st.booleans(),
)
def test_resample_shapes_and_mask(frames: int, fps: float, n: int, training: bool) -> None:
    config = PreprocessConfig(n_frames=n, target_fps=12.5)
    seq = _sequence(frames, frames=frames)
    rng = np.random.default_rng(0) if training else None
    out, mask = resample(seq, fps, config, rng)
    assert out.shape == (n, 18, 3) and mask.shape == (n,) and mask.dtype == bool
    step = fps / config.target_fps
    expected_valid = min(n, int(np.floor((frames - 1) / step)) + 1)
    assert int(mask.sum()) == expected_valid
    assert mask[:expected_valid].all()  # valid frames first, padding after
    assert (out[~mask] == 0).all()
    # Every kept frame is one of the input frames.
    for frame in out[mask]:
        assert any(np.array_equal(frame, s) for s in seq)


def test_resample_short_sequence_is_padded_and_masked() -> None:
    seq = _sequence(5, frames=10)
    out, mask = resample(seq, 25.0, PreprocessConfig(n_frames=32, target_fps=25.0))
    assert mask.sum() == 10 and not mask[10:].any()
    np.testing.assert_array_equal(out[:10], seq)


def test_resample_evaluation_window_is_centred_and_deterministic() -> None:
    seq = _sequence(6, frames=101)
    seq[:, 0, 0] = np.arange(101)  # frame index in the nose x
    config = PreprocessConfig(n_frames=11, target_fps=25.0)
    a, _ = resample(seq, 25.0, config)
    b, _ = resample(seq, 25.0, config)
    np.testing.assert_array_equal(a, b)
    assert a[:, 0, 0].tolist() == list(range(45, 56))


def test_resample_training_windows_vary() -> None:
    seq = _sequence(7, frames=200)
    seq[:, 0, 0] = np.arange(200)
    config = PreprocessConfig(n_frames=8, target_fps=25.0)
    rng = np.random.default_rng(0)
    starts = {resample(seq, 25.0, config, rng)[0][0, 0, 0] for _ in range(20)}
    assert len(starts) > 5


@fast
@given(seed=seeds, p=st.floats(0.05, 0.95))
def test_dropout_zeroes_whole_joints(seed: int, p: float) -> None:
    seq = normalise(_sequence(seed))
    out = joint_dropout(seq, p, np.random.default_rng(seed))
    dropped = (out == 0).all(axis=(0, 2))
    kept = ~dropped
    np.testing.assert_array_equal(out[:, kept], seq[:, kept])
    assert (out[:, dropped] == 0).all()


def test_dropout_rate_matches_p_and_zero_is_noop() -> None:
    seq = normalise(_sequence(8))
    rng = np.random.default_rng(0)
    rates = [(joint_dropout(seq, 0.3, rng) == 0).all(axis=(0, 2)).mean() for _ in range(400)]
    assert np.mean(rates) == pytest.approx(0.3, abs=0.03)
    assert joint_dropout(seq, 0.0, rng) is seq


def test_prepare_batch_shapes_and_masks() -> None:
    seqs = [_sequence(9, frames=12), _sequence(10, frames=90)]
    config = PreprocessConfig(n_frames=16, target_fps=12.5)
    batch, masks = prepare_batch(seqs, [25.0, 25.0], config)
    assert batch.shape == (2, 16, 54) and batch.dtype == np.float32
    assert masks[1].all() and masks[0].sum() == 6
    assert (batch[0, 6:] == 0).all()
    again, _ = prepare_batch(seqs, [25.0, 25.0], config)
    np.testing.assert_array_equal(batch, again)
    aug, _ = prepare_batch(seqs, [25.0, 25.0], config, np.random.default_rng(0), 1.0, 0.0)
    assert not np.array_equal(aug, batch)


def test_batched_inference_preprocessing_equals_the_per_walk_path():
    """``prepare_batch`` without an rng normalises the whole batch at once; every number
    equals the per-walk ``resample`` + ``normalise`` path, hard cases included."""
    config = PreprocessConfig(n_frames=32, target_fps=12.5)
    seqs, rates = [], []
    for k in range(48):
        seq = _sequence(k, frames=20 + 7 * k % 90, missing=0.3 if k % 3 else 0.0)
        if k % 8 == 1:
            seq[:, J["neck"], 2] = 0.0  # no neck: the pelvis alone
        if k % 8 == 2:
            seq[:, [J["r_hip"], J["l_hip"]], 2] = 0.0  # no hips: the neck centres
        if k % 8 == 3:
            seq[:, :, 2] = 0.0  # nothing detected: the fallback height
        seqs.append(seq)
        rates.append(25.0 if k % 2 else 30.0)
    x, mask = prepare_batch(seqs, rates, config)
    for i, (seq, rate) in enumerate(zip(seqs, rates, strict=True)):
        frames, m = resample(seq.astype(np.float32), rate, config)
        frames = normalise(frames, config)
        frames[~m] = 0.0
        assert np.array_equal(mask[i], m)
        assert np.array_equal(x[i], frames.reshape(config.n_frames, -1)), i


@fast
@given(seed=seeds, missing=st.sampled_from([0.0, 0.2]))
def test_vary_widths_scales_hips_and_shoulders_about_their_midpoints(
    seed: int, missing: float
) -> None:
    seq = normalise(_sequence(seed, missing=missing))
    out = vary_widths(seq, np.random.default_rng(seed))
    paired = (J["l_hip"], J["r_hip"], J["l_shoulder"], J["r_shoulder"])
    others = [j for j in range(seq.shape[1]) if j not in paired]
    np.testing.assert_array_equal(out[:, others], seq[:, others])
    np.testing.assert_array_equal(out[..., 2], seq[..., 2])
    for a, b, (lo, hi) in (("l_hip", "r_hip", P.HIP_WIDTH_RANGE),
                           ("l_shoulder", "r_shoulder", P.SHOULDER_WIDTH_RANGE)):  # fmt: skip
        a, b = J[a], J[b]
        both = (seq[:, a, 2] > 0) & (seq[:, b, 2] > 0)
        np.testing.assert_array_equal(out[~both][:, [a, b]], seq[~both][:, [a, b]])
        if not both.any():
            continue
        np.testing.assert_allclose(
            out[both, a, :2] + out[both, b, :2], seq[both, a, :2] + seq[both, b, :2], atol=1e-5
        )
        sep_in = np.linalg.norm(seq[both, a, :2] - seq[both, b, :2], axis=-1)
        sep_out = np.linalg.norm(out[both, a, :2] - out[both, b, :2], axis=-1)
        ok = sep_in > 1e-3
        ratio = sep_out[ok] / sep_in[ok]
        assert np.ptp(ratio) < 1e-3  # one factor for the whole sequence
        assert lo - 1e-4 <= ratio.mean() <= hi + 1e-4


def test_widths_augmentation_only_in_training_and_only_when_asked() -> None:
    seqs = [_sequence(11, frames=40), _sequence(12, frames=40)]
    config = PreprocessConfig(n_frames=16, target_fps=12.5)
    plain = prepare_batch(seqs, [25.0, 25.0], config, rng=np.random.default_rng(3))[0]
    again = prepare_batch(seqs, [25.0, 25.0], config, rng=np.random.default_rng(3), widths_p=0.0)
    np.testing.assert_array_equal(plain, again[0])
    varied = prepare_batch(seqs, [25.0, 25.0], config, rng=np.random.default_rng(3), widths_p=1.0)
    assert not np.array_equal(plain, varied[0])
