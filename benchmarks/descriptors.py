"""How well do the measured gait descriptors measure? Synthetic walkers with known truth.

Generates ``--count`` walkers per view (front, back, side, oblique) with the synthetic
world's attribute sampler, walker, cameras and detector model, measures them with
:func:`gaitsearch.model.descriptors.measure_many` and compares with the truth:

- from the walker's parameters where the descriptor has the same unit: speed / height,
  cadence, stride / height, trunk lean, head pitch;
- from the 3D joints, by the same gait-harmonic definition, where the descriptor is a
  geometric excursion: arm swing, foot clearance, bounce, sway, step asymmetry (whose
  correlation with the limp severity is reported too).

Three variants: ``clean`` (exact projection, all joints seen), ``detector`` (the synthetic
pose-detector model: jitter, self-occlusion, misses) and ``noisy`` (detector plus Gaussian
pixel noise of 2% of body height and 10% of joints dropped). Per view and descriptor it
reports the Pearson correlation, the median absolute error and the fraction measurable; it
also times ``measure_many`` on 64-frame clips. Prints JSON and writes
``benchmarks/results/descriptors.json``.

    python benchmarks/descriptors.py [--count 300] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from gaitsearch.model import descriptors as D
from gaitsearch.model.render import detect, place_cameras, project
from gaitsearch.model.skeleton import J
from gaitsearch.model.synth import sample_attributes
from gaitsearch.model.walker import gait_params, simulate, subset

VIEWS = ("front", "back", "side", "oblique")
VARIANTS = ("clean", "detector", "noisy")
EXPECTED_VIEW = {"front": "frontal", "back": "frontal", "side": "side", "oblique": "oblique"}
OUT = Path(__file__).resolve().parent / "results" / "descriptors.json"


def _truth(joints: np.ndarray, params: Any, fps: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """(n, len(DESCRIPTORS)) true values (see the module docstring)."""
    n = len(frames)
    out = np.full((n, len(D.DESCRIPTORS)), np.nan)
    col = {name: i for i, name in enumerate(D.DESCRIPTORS)}
    out[:, col["speed"]] = params.speed / params.height
    out[:, col["cadence"]] = params.cadence
    out[:, col["stride"]] = params.stride / params.height
    out[:, col["trunk_lean"]] = np.degrees(params.lean)
    out[:, col["head_pitch"]] = np.degrees(params.head_pitch)
    for i in range(n):
        j = joints[i, : frames[i]] / params.height[i]  # x forward, y left, z up
        f = float(params.speed[i] / params.stride[i])
        pel = 0.5 * (j[:, J["r_hip"]] + j[:, J["l_hip"]])
        sig = np.stack(
            [
                pel[:, 1],
                pel[:, 2],
                j[:, J["r_wrist"], 0] - j[:, J["r_shoulder"], 0],
                j[:, J["l_wrist"], 0] - j[:, J["l_shoulder"], 0],
                j[:, J["r_ankle"], 2],
                j[:, J["l_ankle"], 2],
                j[:, J["r_ankle"], 0] - pel[:, 0],
                j[:, J["r_ankle"], 2] - pel[:, 2],
                j[:, J["l_ankle"], 0] - pel[:, 0],
                j[:, J["l_ankle"], 2] - pel[:, 2],
            ],
            axis=1,
        )
        coef = D._harmonic_fit(sig, float(fps[i]), f)
        exc = D._excursion(coef)
        out[i, col["sway"]] = D._excursion(coef[:, :1], (1, 3))[0]
        out[i, col["bounce"]] = exc[1]
        out[i, col["arm_swing_r"]], out[i, col["arm_swing_l"]] = exc[2] / 2, exc[3] / 2
        out[i, col["arm_swing"]] = (exc[2] + exc[3]) / 4
        out[i, col["foot_clearance"]] = (exc[4] + exc[5]) / 2
        h = D.HARMONICS
        zr = coef[0, 6:8] + 1j * coef[h, 6:8]
        zl = coef[0, 8:10] + 1j * coef[h, 8:10]
        ar, al = np.sqrt((np.abs(zr) ** 2).sum()), np.sqrt((np.abs(zl) ** 2).sum())
        lag = np.angle((zr * np.conj(zl)).sum())
        out[i, col["step_asymmetry"]] = max(
            abs(ar - al) / (0.5 * (ar + al)), 4.0 * abs(abs(lag) - np.pi) / (2 * np.pi)
        )
    return out


def _degrade(seqs: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Gaussian pixel noise of 2% of body height and 10% of the joints dropped."""
    out = []
    for s in seqs:
        s = s.copy()
        seen = s[..., 2] > 0
        ys = np.where(seen, s[..., 1], np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            px_h = np.nanmedian(np.nanmax(ys, axis=1) - np.nanmin(ys, axis=1))
        px_h = float(px_h) if np.isfinite(px_h) else 100.0
        s[..., :2] += rng.normal(0.0, 0.02 * px_h, s[..., :2].shape).astype(np.float32)
        drop = rng.random(s.shape[:2]) < 0.10
        s[drop] = 0.0
        s[..., :2] *= (s[..., 2:] > 0).astype(np.float32)
        out.append(s)
    return out


def generate(view: str, count: int, seed: int) -> dict[str, Any]:
    """Walkers of one view: sequences of each variant, fps and truth."""
    rng = np.random.default_rng([seed, VIEWS.index(view)])
    attrs = []
    for _ in range(count):
        a = sample_attributes(rng)
        a["view"] = view
        attrs.append(a)
    params = gait_params(attrs, rng)
    frames = rng.integers(60, 121, count)
    fps = rng.choice([25.0, 30.0], count)
    path = params.speed * frames / fps
    cams = place_cameras([view] * count, path, rng)
    joints = simulate(params, int(frames.max()), fps)
    pixels, _ = project(joints, cams)
    clean = np.concatenate([pixels, np.ones(pixels.shape[:-1] + (1,))], axis=-1)
    det = detect(pixels, joints, cams, rng, rng.uniform(0.5, 1.5, count))
    seqs = {
        "clean": [clean[i, : frames[i]].astype(np.float32) for i in range(count)],
        "detector": [det[i, : frames[i]] for i in range(count)],
    }
    seqs["noisy"] = _degrade(seqs["detector"], rng)
    limp = params.limp * (params.bad_side != 0)
    _ = subset  # the walker API used by the synthetic world; kept for parity
    return {
        "seqs": seqs,
        "fps": fps,
        "truth": _truth(joints, params, fps, frames),
        "limp": limp,
        "azimuth": cams.azimuth,
    }


def _stats(pred: np.ndarray, truth: np.ndarray) -> dict[str, float | None]:
    ok = np.isfinite(pred) & np.isfinite(truth)
    frac = float(np.isfinite(pred).mean())
    if ok.sum() < 5:
        return {"measurable": round(frac, 3), "r": None, "mae": None, "n": int(ok.sum())}
    p, t = pred[ok], truth[ok]
    r = float(np.corrcoef(p, t)[0, 1]) if p.std() > 0 and t.std() > 0 else None
    return {
        "measurable": round(frac, 3),
        "r": None if r is None else round(r, 3),
        "mae": round(float(np.median(np.abs(p - t))), 4),
        "truth_median": round(float(np.median(t)), 4),
        "n": int(ok.sum()),
    }


def timing(seed: int, n: int = 400) -> dict[str, float]:
    """Milliseconds per 64-frame walk for measure_many (detector-model clips)."""
    data = generate("oblique", n, seed + 100)
    seqs = [s[:60] for s in data["seqs"]["detector"]]
    seqs = [np.concatenate([s, s[-4:]]) for s in seqs]  # 64 frames
    D.measure_many(seqs[:10], 25.0)  # warm the caches
    start = time.perf_counter()
    D.measure_many(seqs, 25.0)
    per = (time.perf_counter() - start) / n * 1000.0
    return {
        "ms_per_walk_64_frames": round(per, 3),
        "walks": n,
        "est_217k_walks_s": round(per * 217.0, 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=300, help="walkers per view")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    result: dict[str, Any] = {"seed": args.seed, "count_per_view": args.count, "results": {}}
    views_seen: dict[str, dict[str, float]] = {}
    for view in VIEWS:
        data = generate(view, args.count, args.seed)
        for variant in VARIANTS:
            pred = D.measure_many(data["seqs"][variant], data["fps"])
            table = {
                name: _stats(pred[:, i], data["truth"][:, i])
                for i, name in enumerate(D.DESCRIPTORS)
            }
            asym = pred[:, D.DESCRIPTORS.index("step_asymmetry")]
            ok = np.isfinite(asym)
            if ok.sum() > 5:
                table["step_asymmetry"]["r_limp"] = round(
                    float(np.corrcoef(asym[ok], data["limp"][ok])[0, 1]), 3
                )
            result["results"].setdefault(variant, {})[view] = table
            if variant == "detector":
                got = [D.view_of(s) for s in data["seqs"][variant]]
                views_seen[view] = {
                    v: round(got.count(v) / len(got), 3) for v in ("frontal", "oblique", "side")
                }
    result["view_of"] = views_seen
    result["timing"] = timing(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    print()
    return result


if __name__ == "__main__":
    main()
