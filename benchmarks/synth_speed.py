"""How fast is the synthetic gait world? Sequences per second, files written included.

Measures ``synthesize_gallery`` (vectorised over 256 walkers x all frames per chunk) with 1
and 2 worker processes on ``--count`` sequences (default 20,000; 60-120 frames, ~90 on
average), and, in the same run, a naive baseline that generates the same kind of data one
walker and one frame at a time (same walker, camera and detector code, called per frame) on
a small number of sequences. Prints one JSON object and a markdown table.

    python benchmarks/synth_speed.py [--count 20000] [--baseline-count 40] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from gaitsearch.model.describe import TemplateDescriber
from gaitsearch.model.gallery import GalleryWriter, SequenceRecord
from gaitsearch.model.render import detect, place_cameras, project
from gaitsearch.model.synth import MAX_FRAMES, MIN_FRAMES, sample_attributes, synthesize_gallery
from gaitsearch.model.walker import gait_params, simulate


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def naive_per_frame(out: Path, count: int, seed: int) -> int:
    """One walker at a time, one frame at a time: the loop the vectorised code replaces."""
    rng = np.random.default_rng(seed)
    describer = TemplateDescriber(seed=seed)
    frames_total = 0
    with GalleryWriter(out) as writer:
        for i in range(count):
            attrs = sample_attributes(rng)
            n = int(rng.integers(MIN_FRAMES, MAX_FRAMES + 1))
            fps = float(rng.choice([25.0, 30.0]))
            params = gait_params([attrs], rng)
            cams = place_cameras([attrs["view"]], params.speed * n / fps, rng)
            frames = []
            for f in range(n):
                joints = simulate(params, 1, fps, start_frame=f)
                pixels, _ = project(joints, cams)
                frames.append(detect(pixels, joints, cams, rng)[0, 0])
            seq = np.stack(frames)
            if not (seq[..., 2] > 0).any():
                seq[:, 1, 2] = 0.3
            texts = describer.describe(attrs, 4, str(i))
            record = SequenceRecord(
                id=f"naive-{i:06d}",
                fps=fps,
                source="synthetic",
                attributes=attrs,
                description=texts[0],
                descriptions=texts,
            )
            writer.add(record, seq)
            frames_total += n
    return frames_total


def _measure(label: str, fn, count: int) -> dict:  # type: ignore[no-untyped-def]
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    frames = fn()
    wall = time.perf_counter() - t0
    cpu = _cpu_seconds() - cpu0
    return {
        "method": label,
        "sequences": count,
        "frames": frames,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "sequences_per_s": round(count / wall, 1),
        "frames_per_s": round(frames / wall),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--baseline-count", type=int, default=40)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="synth-bench-"))
    rows = []
    try:
        rows.append(
            _measure(
                "naive per-frame loop (baseline)",
                lambda: naive_per_frame(tmp / "naive", args.baseline_count, args.seed),
                args.baseline_count,
            )
        )
        for workers in [int(w) for w in args.workers.split(",") if w]:
            out = tmp / f"vec{workers}"

            def run(out: Path = out, workers: int = workers) -> int:
                return synthesize_gallery(out, args.count, args.seed, workers=workers)["frames"]

            rows.append(_measure(f"vectorised, {workers} worker(s)", run, args.count))
            shutil.rmtree(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    base = rows[0]["sequences_per_s"]
    for row in rows:
        row["speedup_vs_naive"] = round(row["sequences_per_s"] / base, 1)
    report = {
        "benchmark": "synth_speed",
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "results": rows,
    }
    print(json.dumps(report, indent=2))
    print()
    print("| method | sequences | frames | wall s | CPU s | sequences/s | frames/s | speed-up |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['method']} | {r['sequences']} | {r['frames']} | {r['wall_s']} | {r['cpu_s']} "
            f"| {r['sequences_per_s']} | {r['frames_per_s']} | {r['speedup_vs_naive']}x |"
        )


if __name__ == "__main__":
    main()
