"""Film the synthetic walkers: a pinhole camera and a pose-detector model.

:func:`place_cameras` puts one camera per walker at the view angle its attributes ask for
(front, back, side, oblique), at a surveillance-like height, distance and focal length;
:func:`project` turns 3D joints into OpenPose-18 pixels (y grows downwards);
:func:`detect` makes the result look like pose-estimator output rather than mocap: Gaussian
and temporally correlated jitter that grows as the person gets smaller, confidences that
drop for self-occluded joints (the far arm, leg, eye and ear in profile, the face from
behind), missed joints, short occlusions, and joints outside the image. Missing joints are
``(0, 0, 0)`` as OpenPose writes them. Everything is vectorised over ``(B, T, 18)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from gaitsearch.model.skeleton import J

# Azimuth of the camera around the walker (degrees, 0 = straight ahead, +90 = on the left).
_VIEW_AZIMUTH: dict[str, tuple[float, ...]] = {
    "front": (0.0,),
    "back": (180.0,),
    "side": (90.0, -90.0),
    "oblique": (45.0, -45.0, 135.0, -135.0),
}

_RIGHT = [J[n] for n in ("r_shoulder", "r_elbow", "r_wrist", "r_hip", "r_knee", "r_ankle")]
_LEFT = [J[n] for n in ("l_shoulder", "l_elbow", "l_wrist", "l_hip", "l_knee", "l_ankle")]
_FACE = [J["nose"], J["r_eye"], J["l_eye"]]
_EARS = [J["r_ear"], J["l_ear"]]
_LOWER = [J[n] for n in ("r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle")]

# Per-joint detector noise scale and miss rate: extremities are the hardest.
_NOISE = np.array([0.8, 0.8, 0.9, 1.2, 1.6, 0.9, 1.2, 1.6, 1.0, 1.2, 1.5, 1.0, 1.2, 1.5,
                   0.7, 0.7, 0.9, 0.9], dtype=np.float32)  # fmt: skip
_MISS = np.array([0.004, 0.002, 0.004, 0.01, 0.03, 0.004, 0.01, 0.03, 0.006, 0.01, 0.02,
                  0.006, 0.01, 0.02, 0.01, 0.01, 0.03, 0.03], dtype=np.float32)  # fmt: skip


@dataclass
class Cameras:
    """One camera per walker: each field ``(B,)`` or ``(B, 3)``."""

    position: np.ndarray
    forward: np.ndarray
    right: np.ndarray
    down: np.ndarray
    focal: np.ndarray
    width: np.ndarray
    height: np.ndarray
    azimuth: np.ndarray  # degrees, around the walker's direction of travel
    direction: list[str]  # how the walker moves in the image: toward, away, left, right, ...

    def subset(self, idx: np.ndarray) -> Cameras:
        """The cameras of walkers ``idx``."""
        return Cameras(
            position=self.position[idx],
            forward=self.forward[idx],
            right=self.right[idx],
            down=self.down[idx],
            focal=self.focal[idx],
            width=self.width[idx],
            height=self.height[idx],
            azimuth=self.azimuth[idx],
            direction=[self.direction[i] for i in idx],
        )


def _direction(az: float) -> str:
    along = "toward" if abs(az) < 90 else "away"
    across = "left" if az > 0 else "right"  # camera on the walker's left: moves left in image
    if abs(az) < 1 or abs(abs(az) - 180) < 1:
        return along
    if abs(abs(az) - 90) < 1:
        return across
    return f"{along}-{across}"


def place_cameras(
    views: Sequence[str], path_length: np.ndarray, rng: np.random.Generator
) -> Cameras:
    """Cameras looking at the middle of each walker's path (which runs along +x from 0)."""
    b = len(views)
    nominal = np.array([float(rng.choice(_VIEW_AZIMUTH[v])) for v in views])
    az = nominal + rng.normal(0.0, 7.0, b)
    wide = rng.random(b) < 0.5
    width = np.where(wide, 1920.0, 1280.0)
    height = np.where(wide, 1080.0, 720.0)
    focal = width * rng.uniform(0.55, 0.95, b)
    along = np.abs(np.cos(np.deg2rad(nominal))) > 0.5  # front/back/oblique: walks at the camera
    # Along the optical axis keep the end of the path at least 4 m away; across it, keep the
    # whole path inside about 75% of the image width.
    need_across = focal * path_length / (0.75 * width)
    dist = np.where(
        along,
        path_length / 2 + rng.uniform(4.0, 10.0, b),
        np.maximum(rng.uniform(5.0, 13.0, b), need_across),
    )
    cam_h = rng.uniform(1.6, 4.5, b)
    mid = np.stack([path_length / 2, np.zeros(b), np.zeros(b)], axis=-1)
    rad = np.deg2rad(az)
    position = mid + np.stack([dist * np.cos(rad), dist * np.sin(rad), cam_h], axis=-1)
    target = mid + np.array([0.0, 0.0, 1.0])
    forward = target - position
    forward /= np.linalg.norm(forward, axis=-1, keepdims=True)
    right = np.cross(forward, np.array([0.0, 0.0, 1.0]))
    right /= np.linalg.norm(right, axis=-1, keepdims=True)
    down = np.cross(forward, right)
    return Cameras(
        position=position,
        forward=forward,
        right=right,
        down=down,
        focal=focal,
        width=width,
        height=height,
        azimuth=az,
        direction=[_direction(a) for a in nominal],
    )


def project(joints: np.ndarray, cams: Cameras) -> tuple[np.ndarray, np.ndarray]:
    """Pixels ``(B, T, 18, 2)`` (y down) and depth ``(B, T, 18)`` in metres."""
    rel = joints - cams.position[:, None, None, :]
    depth = np.einsum("btjk,bk->btj", rel, cams.forward)
    depth = np.maximum(depth, 0.1)
    f = cams.focal[:, None, None]
    u = cams.width[:, None, None] / 2 + f * np.einsum("btjk,bk->btj", rel, cams.right) / depth
    v = cams.height[:, None, None] / 2 + f * np.einsum("btjk,bk->btj", rel, cams.down) / depth
    return np.stack([u, v], axis=-1), depth


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], width: int) -> np.ndarray:
    """Unit-variance noise correlated over ``width`` frames along axis 1."""
    raw = rng.standard_normal((shape[0], shape[1] + width, *shape[2:]), dtype=np.float32)
    csum = np.cumsum(raw, axis=1)
    moving = (csum[:, width:] - csum[:, :-width]) / np.sqrt(width)
    return moving


def detect(
    pixels: np.ndarray,
    joints: np.ndarray,
    cams: Cameras,
    rng: np.random.Generator,
    quality: np.ndarray | None = None,
) -> np.ndarray:
    """Detector-like ``(B, T, 18, 3)`` float32: noisy x, y and a confidence per joint.

    ``joints`` (3D, metres) decide self-occlusion from where the camera stands relative to
    the walker's facing direction; ``quality`` in [0.5, 1.5] scales noise and misses
    (1 = typical).
    """
    b, t, nj, _ = pixels.shape
    f32 = np.float32
    pixels = pixels.astype(f32)
    quality = (np.ones(b) if quality is None else np.asarray(quality)).astype(f32)
    # Person height in pixels per frame, for noise scale.
    ys = pixels[..., 1]
    px_h = np.maximum(ys.max(-1) - ys.min(-1), f32(10.0))[..., None]  # (B, T, 1)

    # Facing: walker's left axis from the hips; camera direction seen from the pelvis.
    pelvis = 0.5 * (joints[:, :, J["r_hip"]] + joints[:, :, J["l_hip"]])
    left = joints[:, :, J["l_hip"]] - joints[:, :, J["r_hip"]]
    left[..., 2] = 0.0
    left /= np.maximum(np.linalg.norm(left, axis=-1, keepdims=True), 1e-6)
    fwd = np.stack([left[..., 1], -left[..., 0], np.zeros_like(left[..., 0])], axis=-1)
    to_cam = cams.position[:, None, :] - pelvis
    to_cam[..., 2] = 0.0
    to_cam /= np.maximum(np.linalg.norm(to_cam, axis=-1, keepdims=True), 1e-6)
    facing = (fwd * to_cam).sum(-1)  # +1: camera in front
    lateral = (left * to_cam).sum(-1)  # +1: camera on the walker's left

    conf = rng.normal(0.82, 0.06, (b, 1, 1)).astype(f32)
    conf = np.clip(conf + f32(0.07) * rng.standard_normal((b, t, nj), dtype=f32), 0.05, 1.0)
    vis = np.ones((b, t, nj), dtype=f32)
    # The far side is partly hidden by the body in profile.
    vis[:, :, _RIGHT] *= np.clip(1.0 - 0.55 * np.maximum(lateral, 0.0), 0.3, 1.0)[..., None]
    vis[:, :, _LEFT] *= np.clip(1.0 - 0.55 * np.maximum(-lateral, 0.0), 0.3, 1.0)[..., None]
    lateral, facing = lateral.astype(f32), facing.astype(f32)
    face = np.clip(0.5 + facing, 0.0, 1.0)
    vis[:, :, _FACE] *= face[..., None]
    # In profile only the near eye is seen.
    vis[:, :, J["r_eye"]] *= np.clip(1.0 - 1.1 * lateral, 0.0, 1.0)
    vis[:, :, J["l_eye"]] *= np.clip(1.0 + 1.1 * lateral, 0.0, 1.0)
    vis[:, :, J["r_ear"]] *= np.clip(0.6 - 0.8 * lateral + 0.2 * (facing < 0), 0.0, 1.0)
    vis[:, :, J["l_ear"]] *= np.clip(0.6 + 0.8 * lateral + 0.2 * (facing < 0), 0.0, 1.0)
    conf = conf * (0.35 + 0.65 * vis)

    # Misses: more for low visibility, low quality and small people.
    small = np.clip(f32(120.0) / px_h, 0.5, 3.0)
    p_miss = _MISS[None, None, :] * quality[:, None, None] * small * (1.0 + 6.0 * (1.0 - vis))
    p_miss = np.where(vis < 0.15, 0.9, p_miss)
    missed = rng.random((b, t, nj), dtype=f32) < p_miss

    # Short occlusions: someone or something passes in front for a few frames.
    n_occ = rng.binomial(2, 0.2 * quality)
    for i in np.nonzero(n_occ)[0]:
        for _ in range(int(n_occ[i])):
            length = int(rng.integers(3, 13))
            start = int(rng.integers(0, max(t - length, 1)))
            kind = rng.integers(0, 3)
            which = _LOWER if kind == 0 else (_RIGHT if kind == 1 else list(range(nj)))
            if kind == 1 and rng.random() < 0.5:
                which = _LEFT
            missed[i, start : start + length, which] = True

    # Detector jitter: white + correlated, scaled by person size.
    sigma = 0.006 * px_h[..., None] * _NOISE[None, None, :, None] * quality[:, None, None, None]
    sigma = sigma * (1.6 - conf[..., None])
    noise = rng.standard_normal((b, t, nj, 2), dtype=np.float32)
    noise += 0.8 * _smooth_noise(rng, (b, t, nj, 2), 4)
    xy = pixels + sigma * noise

    inside = (
        (xy[..., 0] >= 0)
        & (xy[..., 0] < cams.width[:, None, None])
        & (xy[..., 1] >= 0)
        & (xy[..., 1] < cams.height[:, None, None])
    )
    keep = ~missed & inside
    out = np.zeros((b, t, nj, 3), dtype=np.float32)
    out[..., :2] = np.where(keep[..., None], xy, 0.0)
    out[..., 2] = np.where(keep, np.round(conf, 3), 0.0)
    return out
