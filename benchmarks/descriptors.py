"""How well do the measured gait descriptors measure? Synthetic walkers with known truth.

Generates ``--count`` walkers per view (front, back, side, oblique) with the synthetic
world's attribute sampler, walker, cameras and detector model, measures them with
:func:`gaitsearch.model.descriptors.measure_many` and compares with the truth:

- from the walker's parameters where the descriptor has the same unit: speed / height,
  cadence, stride / height, trunk lean, head pitch;
- from the 3D joints, by the same gait-harmonic definition, where the descriptor is a
  geometric excursion: arm swing, foot clearance, bounce, sway, step asymmetry (whose
  correlation with the limp severity is reported too).

Four variants: ``clean`` (exact projection, all joints seen), ``detector`` (the synthetic
pose-detector model: jitter, self-occlusion, misses), ``noisy`` (detector plus Gaussian
pixel noise of 2% of body height and 10% of joints dropped) and ``swaps`` (detector plus
left/right swaps of the limbs in short runs, as real pose estimators make them). Per view
and descriptor it reports the Pearson correlation, the median absolute error and the
fraction measurable; it also times ``measure_many`` on 64-frame clips. Prints JSON and writes
``benchmarks/results/descriptors.json``.

    python benchmarks/descriptors.py [--count 300] [--seed 7]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

# One BLAS thread, as in the embedding workers (the batched matrix products would otherwise
# take a second core and the CPU time per walk would count both).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from gaitsearch.model import descriptors as D  # noqa: E402
from gaitsearch.model.attributes import MOTION_GROUPS  # noqa: E402
from gaitsearch.model.render import detect, place_cameras, project  # noqa: E402
from gaitsearch.model.skeleton import FLIP_PERMUTATION, J  # noqa: E402
from gaitsearch.model.synth import sample_attributes  # noqa: E402
from gaitsearch.model.walker import gait_params, simulate  # noqa: E402

VIEWS = ("front", "back", "side", "oblique")
VARIANTS = ("clean", "detector", "noisy", "swaps")
EXPECTED_VIEW = {"front": "frontal", "back": "frontal", "side": "side", "oblique": "oblique"}
OUT = Path(__file__).resolve().parent / "results" / "descriptors.json"
DOC = Path(__file__).resolve().parent.parent / "docs" / "descriptors.md"
BEGIN, END = "<!-- descriptors:begin -->", "<!-- descriptors:end -->"
CLIP_LENGTHS = (20, 30, 45, 60)
VARIANT_NOTE = {
    "clean": "exact projection, every joint seen",
    "detector": "the synthetic pose-detector model: jitter, self-occlusion, misses",
    "noisy": "detector plus Gaussian pixel noise of 2% of body height, 10% of joints dropped",
    "swaps": "detector plus left/right swaps of the legs and arms, as real pose estimators make "
    "them, in runs of 2-7 frames covering 10% of the frames",
}


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


def _swap(seqs: list[np.ndarray], rng: np.random.Generator, frac: float = 0.1) -> list[np.ndarray]:
    """Left/right swaps of the legs and arms in runs of 2-7 frames covering ``frac``."""
    perm = np.array(FLIP_PERMUTATION)
    limbs = np.arange(18)
    limbs[2:14] = perm[2:14]  # arms and legs; the face keeps its labels
    out = []
    for s in seqs:
        s = s.copy()
        hit = np.zeros(len(s), dtype=bool)
        while hit.mean() < frac:
            length = int(rng.integers(2, 8))
            start = int(rng.integers(0, len(s) - length))
            hit[start : start + length] = True
        s[hit] = s[hit][:, limbs]
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
    seqs["swaps"] = _swap(seqs["detector"], rng)
    limp = params.limp * (params.bad_side != 0)
    return {
        "seqs": seqs,
        "fps": fps,
        "truth": _truth(joints, params, fps, frames),
        "limp": limp,
        "azimuth": cams.azimuth,
        "attrs": attrs,
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


def timing(seed: int, n: int = 400, repeats: int = 3) -> dict[str, float]:
    """Milliseconds per 64-frame walk for measure_many (detector-model clips, one core).

    CPU time of this process (the machine is shared: wall time includes waiting for a core)
    and wall time, each the median of ``repeats`` runs.
    """
    data = generate("oblique", n, seed + 100)
    seqs = [s[:60] for s in data["seqs"]["detector"]]
    seqs = [np.concatenate([s, s[-4:]]) for s in seqs]  # 64 frames
    D.measure_many(seqs[:10], 25.0)  # warm the caches
    cpu, wall, alone = [], [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        D.measure_many(seqs, 25.0)
        cpu.append((time.process_time() - c0) / n * 1000.0)
        wall.append((time.perf_counter() - w0) / n * 1000.0)
        # Baseline in the same run: the same walks measured one by one.
        c0 = time.process_time()
        for s in seqs:
            D.measure(s, 25.0)
        alone.append((time.process_time() - c0) / n * 1000.0)
    per = float(np.median(cpu))
    base = float(np.median(alone))
    return {
        "ms_per_walk_64_frames": round(per, 3),
        "ms_per_walk_64_frames_wall": round(float(np.median(wall)), 3),
        "ms_per_walk_64_frames_walk_by_walk": round(base, 3),
        "batched_speedup": round(base / per, 2) if per > 0 else 0.0,
        "walks": n,
        "repeats": repeats,
        "est_217k_walks_s": round(per * 217.0, 1),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count() or 0,
    }


def standing(seed: int, n: int = 200) -> dict[str, float]:
    """People who stand still (a frozen pose under detector jitter): cadence must be NaN."""
    rng = np.random.default_rng([seed, 99])
    out: dict[str, float] = {}
    for view in VIEWS:
        # No style: a staggering walker sways and shuffles on their own, standing or not.
        attrs = [{**sample_attributes(rng), "view": view, "style": "none"} for _ in range(n)]
        params = gait_params(attrs, rng)
        params = dataclasses.replace(params, speed=params.speed * 1e-6)
        joints = simulate(params, 90, 25.0)
        cams = place_cameras([view] * n, np.full(n, 3.0), rng)
        pixels, _ = project(joints, cams)
        seqs = list(detect(pixels, joints, cams, rng))
        got = D.measure_many(seqs, 25.0)[:, D.DESCRIPTORS.index("cadence")]
        out[view] = round(float(np.isfinite(got).mean()), 3)
    return out


def clip_lengths(seed: int, n: int = 200) -> dict[str, dict[str, dict[str, float | None]]]:
    """Short tracklets: cadence and speed, measurable fraction and error, by clip length."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for view in ("side", "front"):
        data = generate(view, n, seed + 200)
        for length in CLIP_LENGTHS:
            seqs = [s[:length] for s in data["seqs"]["detector"]]
            pred = D.measure_many(seqs, data["fps"])
            cell: dict[str, float | None] = {}
            for name in ("cadence", "speed"):
                st = _stats(
                    pred[:, D.DESCRIPTORS.index(name)], data["truth"][:, D.DESCRIPTORS.index(name)]
                )
                cell[f"{name}_measurable"] = st["measurable"]
                cell[f"{name}_mae"] = st["mae"]
            out.setdefault(view, {})[str(length)] = cell
    return out


REAL_NAMES = ("speed", "cadence", "stride", "trunk_lean", "arm_swing", "bounce")


def _crossings(x: np.ndarray, fps: float) -> float:
    """Steps per minute from the zero crossings of a fore-aft ankle separation (NaN if < 3)."""
    s = np.sign(x)
    idx = np.nonzero(s[1:] * s[:-1] < 0)[0]
    if len(idx) < 3:
        return float("nan")
    t = (idx + x[idx] / (x[idx] - x[idx + 1])) / fps  # linear interpolation of each crossing
    return float((len(t) - 1) / (t[-1] - t[0]) * 60.0)


def _dataset(path: Path) -> str:
    return "cmu" if path.stem.replace("_", "").isdigit() else path.stem.split("_")[0]


def real_clips(bvh_dir: Path, fps: float = 25.0, window: int = 64, stride: int = 32) -> Any:
    """Motion-capture clips through model/bvh.py: 2D at front/oblique/side vs 3D truth.

    Truth per window from the 3D joints alone: speed = horizontal root (mid-hip) travel per
    second, cadence from the zero crossings of the ankles' fore-aft separation, stride =
    speed / stride frequency, trunk lean = the pelvis-to-neck line's forward angle, arm swing
    and bounce = the gait-harmonic definition used for the synthetic walkers; lengths over
    the importer's body height (head top to ankle).
    """
    try:
        from gaitsearch.model import bvh
    except ImportError:
        return None
    files = sorted(bvh_dir.glob("*.bvh")) if bvh_dir.is_dir() else []
    if not files:
        return None
    rows: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    rng = np.random.default_rng(5)
    col = {n: D.DESCRIPTORS.index(n) for n in REAL_NAMES}
    for path in files:
        # CMU trials are numbered (subject_trial: straight walks); 100STYLE clips walk
        # curved paths and turn.
        dataset = _dataset(path)
        motion = bvh.read_bvh(path)
        joints, up = bvh.openpose_3d(motion)
        joints = bvh.resample(joints, motion.fps, fps)
        ankle = 0.5 * (joints[:, J["l_ankle"]] + joints[:, J["r_ankle"]])
        body = float(np.median((joints[:, J["nose"]] - ankle) @ up)) * 1.12
        for s in bvh.windows(len(joints), window, stride):
            seg = joints[s : s + window]
            direction, _ = bvh.walking_direction(seg, up)
            pel = 0.5 * (seg[:, J["r_hip"]] + seg[:, J["l_hip"]])
            fwd = (pel - pel[0]) @ direction
            truth = np.full(len(D.DESCRIPTORS), np.nan)
            truth[col["speed"]] = abs(np.polyfit(np.arange(window) / fps, fwd, 1)[0]) / body
            sep = (seg[:, J["r_ankle"]] - seg[:, J["l_ankle"]]) @ direction
            cadence = _crossings(sep - sep.mean(), fps)
            truth[col["cadence"]] = cadence
            truth[col["stride"]] = truth[col["speed"]] * 120.0 / cadence
            trunk = seg[:, J["neck"]] - pel
            truth[col["trunk_lean"]] = np.degrees(
                np.median(np.arctan2(trunk @ direction, trunk @ up))
            )
            if np.isfinite(cadence):
                sig = (
                    np.stack(
                        [
                            (seg[:, J["r_wrist"]] - seg[:, J["r_shoulder"]]) @ direction,
                            (seg[:, J["l_wrist"]] - seg[:, J["l_shoulder"]]) @ direction,
                            pel @ up,
                        ],
                        axis=1,
                    )
                    / body
                )
                exc = D._excursion(D._harmonic_fit(sig, fps, cadence / 120.0))
                truth[col["arm_swing"]] = (exc[0] + exc[1]) / 4
                truth[col["bounce"]] = exc[2]
            for view in bvh.VIEWS:
                arr = bvh.project(seg, up, direction, view, body)
                noisy = _degrade([arr], rng)[0]
                for variant, a in (("clean", arr), ("noisy", noisy)):
                    key = f"{dataset}/{variant}/{view}"
                    rows.setdefault(key, []).append((D.measure(a, fps), truth))
    out: dict[str, Any] = {"clips": len(files), "fps": fps, "window": window, "stride": stride}
    for key, pairs in rows.items():
        pred = np.stack([p for p, _ in pairs])
        truth = np.stack([t for _, t in pairs])
        out.setdefault("results", {})[key] = {
            n: _stats(pred[:, col[n]], truth[:, col[n]]) for n in REAL_NAMES
        }
        out["results"][key]["windows"] = len(pairs)
    out["clips_per_dataset"] = {
        d: sum(1 for f in files if _dataset(f) == d)
        for d in sorted({k.split("/")[0] for k in rows})
    }
    return out


def by_attribute(
    attrs: list[dict[str, str]], pred: np.ndarray, groups: tuple[str, ...] = MOTION_GROUPS
) -> dict[str, dict[str, dict[str, float | None]]]:
    """Median measured descriptor per attribute value (all views, where measurable)."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for group in groups:
        values = sorted({a[group] for a in attrs if group in a})
        for value in values:
            rows = np.array([a.get(group) == value for a in attrs])
            cell: dict[str, float | None] = {"n": int(rows.sum())}
            for i, name in enumerate(D.DESCRIPTORS):
                col = pred[rows, i]
                col = col[np.isfinite(col)]
                cell[name] = round(float(np.median(col)), 4) if len(col) >= 5 else None
            out.setdefault(group, {})[value] = cell
    return out


def _fmt(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}g}"


def markdown(result: dict[str, Any]) -> str:
    """The tables of docs/descriptors.md, from the JSON alone."""
    lines = [
        f"Seed {result['seed']}, {result['count_per_view']} synthetic walkers per view "
        "(60-120 frames at 25 or 30 fps), `python benchmarks/descriptors.py`. Each cell: "
        "Pearson r with the truth / median absolute error (descriptor's unit) / fraction "
        "measurable; — = not measurable in that view (NaN).",
        "",
    ]
    for variant in VARIANTS:
        views = result["results"][variant]
        lines += [f"**{variant}** ({VARIANT_NOTE[variant]})", ""]
        lines.append("| descriptor | unit | " + " | ".join(VIEWS) + " |")
        lines.append("| --- | --- |" + " --- |" * len(VIEWS))
        for name in D.DESCRIPTORS:
            cells = []
            for view in VIEWS:
                st = views[view][name]
                if st["r"] is None and st["mae"] is None:
                    cells.append(f"— ({st['measurable']:.2f})")
                else:
                    cells.append(f"{_fmt(st['r'], 2)} / {_fmt(st['mae'])} / {st['measurable']:.2f}")
            lines.append(f"| {name} | {D.UNITS[name]} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("Step asymmetry against the limp severity (Pearson r, detector variant): ")
    det = result["results"]["detector"]
    lines.append(
        ", ".join(f"{v} {_fmt(det[v]['step_asymmetry'].get('r_limp'), 2)}" for v in VIEWS) + "."
    )
    lines += ["", "View estimated by `view_of` (detector variant, fraction of walkers):", ""]
    lines.append("| camera | frontal | oblique | side |")
    lines.append("| --- | --- | --- | --- |")
    for view, got in result["view_of"].items():
        lines.append(f"| {view} | {got['frontal']} | {got['oblique']} | {got['side']} |")
    st = result["standing"]
    lines += [
        "",
        "People standing still under detector jitter (no walking style) who get a cadence "
        "(should be 0): " + ", ".join(f"{v} {st[v]}" for v in VIEWS) + ".",
        "",
    ]
    if "clip_lengths" in result:
        lines += [
            "Short clips (detector variant, frames at 25 or 30 fps): cadence and speed, "
            "fraction measurable / median absolute error:",
            "",
            "| view | " + " | ".join(f"{k} frames" for k in result["clip_lengths"]["side"]) + " |",
            "| --- |" + " --- |" * len(result["clip_lengths"]["side"]),
        ]
        for view, cells in result["clip_lengths"].items():
            for name in ("cadence", "speed"):
                row = " | ".join(
                    f"{c[name + '_measurable']:.2f} / {_fmt(c[name + '_mae'])}"
                    for c in cells.values()
                )
                lines.append(f"| {view} {name} | {row} |")
        lines.append("")
    real = result.get("real_clips")
    if real:
        per = ", ".join(f"{d} {n}" for d, n in real["clips_per_dataset"].items())
        lines += [
            f"Motion-capture clips ({per} clips; {real['window']}-frame windows every "
            f"{real['stride']} frames at {real['fps']:g} fps, seen orthographically by "
            "`model/bvh.py` from the front, obliquely and from the side): r / median absolute "
            "error / fraction measurable against the 3D truth.",
            "",
            "| clips / variant / view | windows | " + " | ".join(REAL_NAMES) + " |",
            "| --- | --- |" + " --- |" * len(REAL_NAMES),
        ]
        for key, cells in real["results"].items():
            row = []
            for name in REAL_NAMES:
                st = cells[name]
                if st["mae"] is None:
                    row.append(f"— ({st['measurable']:.2f})")
                else:
                    row.append(f"{_fmt(st['r'], 2)} / {_fmt(st['mae'])} / {st['measurable']:.2f}")
            lines.append(f"| {key} | {cells['windows']} | " + " | ".join(row) + " |")
        lines.append("")
    t = result["timing"]
    lines += [
        f"Cost: {t['ms_per_walk_64_frames']} ms of CPU per 64-frame walk (median of "
        f"{t['repeats']} runs over {t['walks']} walks, one core; "
        f"{t['ms_per_walk_64_frames_wall']} ms wall on the shared machine, load average "
        f"{t.get('load_average_1min')} on {t.get('cpus')} cores), "
        f"about {t['est_217k_walks_s']} s of one core for 217k walks; measured one by one "
        f"in the same run: {t.get('ms_per_walk_64_frames_walk_by_walk')} ms "
        f"({t.get('batched_speedup')}x slower).",
        "",
        "Median measured value per attribute value (detector variant, all views pooled "
        "where measurable):",
        "",
    ]
    cols = ("speed", "cadence", "stride", "arm_swing", "trunk_lean", "head_pitch",
            "foot_clearance", "bounce", "sway", "step_asymmetry")  # fmt: skip
    lines.append("| attribute | n | " + " | ".join(cols) + " |")
    lines.append("| --- | --- |" + " --- |" * len(cols))
    for group, values in result["by_attribute"].items():
        for value, cell in values.items():
            row = " | ".join(_fmt(cell[c]) for c in cols)
            lines.append(f"| {group}={value} | {cell['n']} | {row} |")
    return "\n".join(lines) + "\n"


def write_doc(result: dict[str, Any], doc: Path = DOC) -> None:
    """Replace the generated block of docs/descriptors.md."""
    text = doc.read_text()
    block = f"{BEGIN}\n{markdown(result)}{END}"
    if BEGIN not in text:
        raise SystemExit(f"{doc.name}: no {BEGIN} marker")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1] if END in rest else ""
    doc.write_text(head + block + tail)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=300, help="walkers per view")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--doc", action="store_true", help="rewrite the tables in docs/descriptors.md")
    ap.add_argument(
        "--render", action="store_true", help="only rewrite the doc from the existing JSON"
    )
    ap.add_argument(
        "--bvh-dir", type=Path, default=None, help="motion-capture clips (*.bvh) to measure"
    )
    args = ap.parse_args(argv)
    if args.render:
        result = json.loads(args.out.read_text())
        write_doc(result)
        return result
    result: dict[str, Any] = {"seed": args.seed, "count_per_view": args.count, "results": {}}
    views_seen: dict[str, dict[str, float]] = {}
    all_attrs: list[dict[str, str]] = []
    all_pred = []
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
                all_attrs += data["attrs"]
                all_pred.append(pred)
    result["view_of"] = views_seen
    result["standing"] = standing(args.seed)
    result["clip_lengths"] = clip_lengths(args.seed)
    result["by_attribute"] = by_attribute(all_attrs, np.concatenate(all_pred))
    if args.bvh_dir is not None:
        result["real_clips"] = real_clips(args.bvh_dir)
    result["timing"] = timing(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    if args.doc:
        write_doc(result)
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    print()
    return result


if __name__ == "__main__":
    main()
