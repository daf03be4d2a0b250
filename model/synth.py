"""The synthetic gait world: sample people, walk them, film them, describe them.

:func:`synthesize_gallery` writes a gallery directory (``sequences/*.npy`` +
``metadata.jsonl`` with attributes and template descriptions) and ``queries.jsonl``
(held-out phrasing, ``relevant`` = every id whose attributes satisfy the query). Same seed,
same bytes: every random draw comes from generators seeded by ``(seed, chunk)``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gaitsearch.model.attributes import ATTRIBUTES, MOTION_GROUPS
from gaitsearch.model.describe import TemplateDescriber, heldout_query
from gaitsearch.model.gallery import GalleryWriter, SequenceRecord
from gaitsearch.model.render import detect, place_cameras, project
from gaitsearch.model.walker import gait_params, simulate

CHUNK = 256
MIN_FRAMES, MAX_FRAMES = 60, 120
QUERIES_FILE = "queries.jsonl"


def _pick(rng: np.random.Generator, weights: Mapping[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def sample_attributes(rng: np.random.Generator) -> dict[str, str]:
    """One attribute set with plausible correlations between groups."""
    gender = _pick(rng, {"male": 1, "female": 1})
    age = _pick(rng, {"child": 0.12, "young": 0.28, "adult": 0.38, "elderly": 0.22})
    build = _pick(
        rng,
        {"slim": 0.3, "average": 0.45, "heavy": 0.25 if age != "child" else 0.1},
    )
    impairment = _pick(
        rng,
        {
            "none": 0.72,
            "limp": 0.14,
            "cane": {"elderly": 0.35, "adult": 0.04, "young": 0.01, "child": 0.0}[age],
        },
    )
    pace_w = {"slow": 0.22, "normal": 0.34, "brisk": 0.28, "running": 0.16}
    if impairment != "none":
        pace_w = {"slow": 0.6, "normal": 0.35, "brisk": 0.05, "running": 0.0}
    elif age == "elderly":
        pace_w = {"slow": 0.4, "normal": 0.35, "brisk": 0.2, "running": 0.05}
    elif age == "child":
        pace_w["running"] = 0.3
    pace = _pick(rng, pace_w)
    heels = 0.5 if gender == "female" and age in ("young", "adult") else 0.02
    heels = 0.06 if gender == "female" and age == "elderly" else heels
    if age == "child" or impairment == "cane" or pace == "running":
        heels = 0.0 if age == "child" else 0.01
    boots = 0.4 if gender == "male" else 0.28
    footwear = _pick(rng, {"flat": 0.62, "heels": heels, "boots": boots})
    carry_w = {
        "nothing": 0.22,
        "handbag": 0.14 if gender == "female" else 0.05,
        "backpack": 0.14 if age in ("child", "young") else 0.1,
        "suitcase": 0.1,
        "phone_call": 0.12,
        "texting": 0.12,
        "hands_in_pockets": 0.12,
    }
    if pace == "running":
        carry_w.update(suitcase=0.01, texting=0.01, hands_in_pockets=0.01, phone_call=0.03)
    if age == "child":
        carry_w.update(suitcase=0.02, phone_call=0.03, handbag=0.01)
    if impairment == "cane":
        carry_w.update(suitcase=0.02, texting=0.02)
    carrying = _pick(rng, carry_w)
    energy = _pick(
        rng,
        {
            "neutral": 0.5,
            "tired": 0.25 if pace != "running" else 0.05,
            "confident": 0.25 if impairment == "none" else 0.05,
        },
    )
    view = _pick(rng, {"front": 0.25, "back": 0.25, "side": 0.3, "oblique": 0.2})
    return {
        "gender": gender,
        "age": age,
        "build": build,
        "pace": pace,
        "footwear": footwear,
        "carrying": carrying,
        "impairment": impairment,
        "energy": energy,
        "view": view,
    }


def generate_batch(
    attribute_sets: Sequence[Mapping[str, Any]],
    rng: np.random.Generator,
    frames: Sequence[int],
    fps: Sequence[float],
) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    """Walk and film one batch: ``(arrays, extras)`` with per-sequence extra metadata."""
    params = gait_params(attribute_sets, rng)
    t_max = int(max(frames))
    fps_arr = np.asarray(fps, dtype=np.float64)
    joints = simulate(params, t_max, fps_arr)
    path = params.speed * np.asarray(frames) / fps_arr
    cams = place_cameras([str(a["view"]) for a in attribute_sets], path, rng)
    pixels, _ = project(joints, cams)
    quality = rng.uniform(0.5, 1.5, len(attribute_sets))
    seqs = detect(pixels, joints, cams, rng, quality)
    arrays = [seqs[i, : frames[i]] for i in range(len(frames))]
    # Guarantee a usable sequence: any frame with nothing detected keeps its neck.
    for arr, full in zip(arrays, pixels, strict=False):
        if not (arr[..., 2] > 0).any():
            arr[:, 1, :2] = full[: len(arr), 1]
            arr[:, 1, 2] = 0.3
    extras = [
        {
            "direction": cams.direction[i],
            "height_cm": round(float(params.height[i]) * 100.0, 1),
            "speed_mps": round(float(params.speed[i]), 2),
            "cadence_spm": round(float(params.cadence[i]), 1),
        }
        for i in range(len(frames))
    ]
    return arrays, extras


def _matches(attrs: Mapping[str, Any], predicate: Mapping[str, str]) -> bool:
    return all(attrs.get(g) == v for g, v in predicate.items())


def build_queries(
    attributes: Mapping[str, Mapping[str, Any]],
    seed: int,
    n_queries: int | None = None,
) -> list[dict[str, Any]]:
    """Held-out phrased queries over 1-3 attribute constraints with their relevant ids."""
    rng = random.Random(f"queries:{seed}")
    ids = list(attributes)
    if not ids:
        return []
    n_queries = n_queries or int(np.clip(len(ids) // 3, 20, 300))
    groups = [*MOTION_GROUPS, "view"]
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _ in range(n_queries * 20):
        if len(out) >= n_queries:
            break
        k = rng.choices([1, 2, 3], weights=[0.3, 0.45, 0.25])[0]
        chosen = rng.sample(groups, k)
        # Build predicates from an existing person so most have relevant ids.
        anchor = attributes[rng.choice(ids)]
        predicate = {g: str(anchor[g]) for g in sorted(chosen)}
        if all(v in ("nothing", "none", "neutral", "average", "flat") for v in predicate.values()):
            continue
        key = json.dumps(predicate, sort_keys=True)
        if key in seen:
            continue
        relevant = sorted(i for i in ids if _matches(attributes[i], predicate))
        if not relevant:
            continue
        seen.add(key)
        out.append(
            {"query": heldout_query(predicate, rng), "relevant": relevant, "attributes": predicate}
        )
    return out


def synthesize_gallery(
    out_dir: Path | str,
    count: int,
    seed: int,
    preview: Path | str | None = None,
    per_sequence: int = 4,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Write ``count`` synthetic sequences, their metadata and ``queries.jsonl`` to ``out_dir``.

    Returns a summary (counts, attribute histograms, paths). ``out_dir`` must be empty or
    absent.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    out_dir = Path(out_dir)
    describer = TemplateDescriber(seed=seed)
    all_attrs: dict[str, dict[str, Any]] = {}
    preview_items: list[tuple[str, np.ndarray, dict[str, Any]]] = []
    frames_total = 0
    with GalleryWriter(out_dir) as writer:
        for chunk, start in enumerate(range(0, count, CHUNK)):
            n = min(CHUNK, count - start)
            rng = np.random.default_rng([seed, chunk])
            attrs = [sample_attributes(rng) for _ in range(n)]
            frames = rng.integers(MIN_FRAMES, MAX_FRAMES + 1, n).tolist()
            fps = [float(f) for f in rng.choice([25.0, 30.0], n)]
            arrays, extras = generate_batch(attrs, rng, frames, fps)
            for i in range(n):
                seq_id = f"syn-{start + i:06d}"
                full = {**attrs[i], **extras[i]}
                texts = describer.describe(attrs[i], per_sequence + int(rng.integers(0, 2)), seq_id)
                record = SequenceRecord(
                    id=seq_id,
                    fps=fps[i],
                    source="synthetic",
                    attributes=full,
                    description=texts[0],
                    descriptions=texts,
                )
                writer.add(record, arrays[i])
                all_attrs[seq_id] = attrs[i]
                frames_total += frames[i]
                if preview is not None and len(preview_items) < 12:
                    preview_items.append((seq_id, arrays[i], attrs[i]))
            if on_progress:
                on_progress(n)
    queries = build_queries(all_attrs, seed)
    with (out_dir / QUERIES_FILE).open("w", encoding="utf-8") as fh:
        for q in queries:
            fh.write(json.dumps(q, sort_keys=True, ensure_ascii=False) + "\n")
    if preview is not None:
        from gaitsearch.model.preview import draw_contact_sheet

        draw_contact_sheet(preview_items, Path(preview))
    histogram = {
        g: {v: sum(1 for a in all_attrs.values() if a[g] == v) for v in ATTRIBUTES[g]}
        for g in ATTRIBUTES
    }
    return {
        "out": str(out_dir),
        "count": count,
        "frames": frames_total,
        "queries": len(queries),
        "seed": seed,
        "attributes": histogram,
        "preview": str(preview) if preview is not None else None,
    }
