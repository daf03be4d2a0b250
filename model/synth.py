"""The synthetic gait world: sample people, walk them, film them, describe them.

:func:`synthesize_gallery` writes a gallery directory (``sequences/*.npy`` +
``metadata.jsonl`` with attributes and template descriptions) and ``queries.jsonl``
(held-out phrasing, ``relevant`` = every id whose attributes satisfy the query). Same seed,
same bytes: every random draw comes from generators seeded by ``(seed, chunk)``.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gaitsearch.model.attributes import ATTRIBUTES, MOTION_GROUPS
from gaitsearch.model.describe import TemplateDescriber, heldout_query
from gaitsearch.model.gallery import (
    METADATA_FILE,
    SEQUENCES_DIR,
    GalleryError,
    SequenceRecord,
    record_to_json,
    sequence_path,
)
from gaitsearch.model.render import detect, place_cameras, project
from gaitsearch.model.skeleton import validate_sequence
from gaitsearch.model.walker import gait_params, simulate, subset

CHUNK = 256
LENGTH_GROUPS = 4  # walkers of a chunk are simulated in this many groups of similar length
MIN_FRAMES, MAX_FRAMES = 60, 120
QUERIES_FILE = "queries.jsonl"


def _pick(rng: np.random.Generator, weights: Mapping[str, float]) -> str:
    """One key of ``weights`` with probability proportional to its weight."""
    r = rng.random() * sum(weights.values())
    name = ""
    for name, w in weights.items():
        if r < w:
            return name
        r -= w
    return name


def _sample_styles(
    rng: np.random.Generator,
    gender: str,
    age: str,
    pace: str,
    carrying: str,
    impairment: str,
    footwear: str,
    energy: str,
) -> dict[str, str]:
    """The walking-style groups (emotion, posture, step, arm_swing, style) of one walker.

    The default value of each group stays the most frequent (about half); contradictions
    (sneaking and stomping, marching and shuffling, running while sneaking or staggering,
    wide or absent arm swing while the hands hold something) get weight zero.
    """
    slow = pace in ("slow", "normal")
    running = pace == "running"
    impaired = impairment != "none"
    emotion = _pick(
        rng,
        {
            "neutral": 0.55,
            "sad": 0.0
            if running
            else (0.12 if slow else 0.02) + (0.04 if energy == "tired" else 0.0),
            "happy": 0.1 if energy != "tired" else 0.03,
            "angry": 0.08 if pace != "slow" else 0.03,
            "proud": 0.08 if not impaired and energy != "tired" else 0.01,
            "fearful": 0.06 if not running else 0.02,
        },
    )
    style = _pick(
        rng,
        {
            "none": 0.55,
            "hip_sway": 0.14 if gender == "female" else 0.04,
            "swagger": (0.1 if gender == "male" else 0.04) if age in ("young", "adult") else 0.02,
            "marching": 0.0 if impaired or running or age == "elderly" else 0.07,
            "staggering": 0.0 if running else (0.09 if impaired or energy == "tired" else 0.05),
            "sneaking": 0.0 if pace in ("brisk", "running") or impaired else 0.07,
        },
    )
    step_w = {
        "normal": 0.55,
        "shuffling": 0.14 if age == "elderly" or energy == "tired" or emotion == "sad" else 0.05,
        "stomping": 0.1 if emotion == "angry" or footwear == "boots" else 0.05,
        "bouncy": 0.1 if emotion == "happy" or energy == "lively" or age == "child" else 0.04,
        "long_strides": 0.08 if emotion in ("proud", "angry") or energy == "confident" else 0.05,
        "short_steps": 0.08 if emotion == "fearful" or age == "elderly" else 0.05,
        "on_toes": 0.0 if footwear == "heels" or impaired else 0.04,
    }
    if style == "sneaking":
        step_w.update(stomping=0.0, bouncy=0.0, shuffling=0.0, long_strides=0.2)
    if style == "marching":
        step_w.update(shuffling=0.0, on_toes=0.0, short_steps=0.0)
    if style == "staggering":
        step_w.update(on_toes=0.0, long_strides=0.0, bouncy=0.0)
    if running:
        step_w.update(shuffling=0.0, stomping=0.0, on_toes=0.0)
    step = _pick(rng, step_w)
    posture = _pick(
        rng,
        {
            "normal": 0.55,
            "hunched": 0.14 if age == "elderly" or emotion in ("sad", "fearful") else 0.06,
            "upright": (
                0.0
                if style == "sneaking"
                else 0.2
                if emotion == "proud" or energy == "confident" or style == "marching"
                else 0.08
            ),
            "head_down": (0.0 if carrying == "texting" else 0.18 if emotion == "sad" else 0.06),
        },
    )
    arms_free = carrying in ("nothing", "backpack")
    arm_w = {
        "normal": 0.5,
        "wide": 0.12 if emotion == "happy" or style in ("swagger", "marching") else 0.06,
        "stiff": 0.1 if emotion in ("angry", "fearful") or style == "marching" else 0.05,
        "none": 0.12 if emotion == "sad" or energy == "tired" else 0.05,
    }
    if not arms_free:
        arm_w.update(wide=0.0, none=0.0, stiff=0.0)
    if running:
        arm_w.update(none=0.0, stiff=0.0)
    arm_swing = _pick(rng, arm_w)
    return {
        "emotion": emotion,
        "posture": posture,
        "step": step,
        "arm_swing": arm_swing,
        "style": style,
    }


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
        carry_w.update(suitcase=min(carry_w["suitcase"], 0.02), phone_call=0.03, handbag=0.01)
    if impairment == "cane":
        carry_w.update(suitcase=0.02, texting=0.02)
    carrying = _pick(rng, carry_w)
    energy = _pick(
        rng,
        {
            "neutral": 0.5,
            "tired": 0.2 if pace != "running" else 0.04,
            "lively": (0.15 if age in ("child", "young") else 0.08)
            if impairment == "none"
            else 0.02,
            "confident": 0.2 if impairment == "none" else 0.05,
        },
    )
    view = _pick(rng, {"front": 0.25, "back": 0.25, "side": 0.3, "oblique": 0.2})
    # The style groups come from a generator seeded from (not drawn from) ``rng``'s state, so
    # the other groups' draws, and everything drawn from ``rng`` afterwards, are unchanged.
    digest = hashlib.sha256(repr(rng.bit_generator.state).encode()).digest()
    style_rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    styles = _sample_styles(style_rng, gender, age, pace, carrying, impairment, footwear, energy)
    return {
        "gender": gender,
        "age": age,
        "build": build,
        "pace": pace,
        "footwear": footwear,
        "carrying": carrying,
        "impairment": impairment,
        "energy": energy,
        **styles,
        "view": view,
    }


def generate_batch(
    attribute_sets: Sequence[Mapping[str, Any]],
    rng: np.random.Generator,
    frames: Sequence[int],
    fps: Sequence[float],
) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    """Walk and film one batch: ``(arrays, extras)`` with per-sequence extra metadata.

    Walkers are simulated in a few groups of similar length, so little work is spent on
    frames that are cut off afterwards.
    """
    n = len(attribute_sets)
    params = gait_params(attribute_sets, rng)
    frames_arr = np.asarray(frames, dtype=np.int64)
    fps_arr = np.asarray(fps, dtype=np.float64)
    path = params.speed * frames_arr / fps_arr
    cams = place_cameras([str(a["view"]) for a in attribute_sets], path, rng)
    quality = rng.uniform(0.5, 1.5, n)
    arrays: list[np.ndarray] = [np.empty(0)] * n
    order = np.argsort(frames_arr, kind="stable")
    for idx in np.array_split(order, min(n, LENGTH_GROUPS)):
        if len(idx) == 0:
            continue
        group_cams = cams.subset(idx)
        joints = simulate(subset(params, idx), int(frames_arr[idx].max()), fps_arr[idx])
        pixels, _ = project(joints, group_cams)
        seqs = detect(pixels, joints, group_cams, rng, quality[idx])
        for k, i in enumerate(idx):
            arr = seqs[k, : frames_arr[i]]
            # Guarantee a usable sequence: if nothing was detected, keep the neck.
            if not (arr[..., 2] > 0).any():
                arr[:, 1, :2] = pixels[k, : len(arr), 1]
                arr[:, 1, 2] = 0.3
            arrays[i] = arr
    extras = [
        {
            "direction": cams.direction[i],
            "height_cm": round(float(params.height[i]) * 100.0, 1),
            "speed_mps": round(float(params.speed[i]), 2),
            "cadence_spm": round(float(params.cadence[i]), 1),
        }
        for i in range(n)
    ]
    return arrays, extras


def build_queries(
    attributes: Mapping[str, Mapping[str, Any]],
    seed: int,
    n_queries: int | None = None,
) -> list[dict[str, Any]]:
    """Held-out queries over 1-3 attribute constraints with their relevant ids.

    Two families (each query's ``"family"``): about two thirds ``"phrasing"`` (held-out
    phrasing over the motion groups and the view) and one third ``"synonym"`` (synonyms no
    description uses; each names a non-default value of a style/mood group, see
    :data:`describe.SYNONYM_GROUPS`); ``n_queries`` counts both. Each predicate is taken
    from a random sequence's attributes (so most have matches); predicates made only of
    default values ("nothing", "none", ...) and duplicates are skipped. ``relevant`` lists
    every id whose attributes satisfy the predicate.
    """
    from gaitsearch.model.describe import SYNONYM_GROUPS, synonym_query

    rng = random.Random(f"queries:{seed}")
    ids = sorted(attributes)
    if not ids:
        return []
    n_queries = n_queries or int(np.clip(len(ids) // 3, 20, 300))
    groups = [g for g in (*MOTION_GROUPS, "view") if any(g in a for a in attributes.values())]
    columns = {g: np.array([str(attributes[i].get(g)) for i in ids]) for g in groups}
    id_array = np.array(ids)
    styled = [g for g in SYNONYM_GROUPS if g in groups]

    def default(group: str, value: str) -> bool:
        plain = value in ("nothing", "none", "neutral", "average", "flat")
        return plain or (value == "normal" and group != "pace")

    n_synonym = n_queries // 3 if styled else 0
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for family, quota in (("phrasing", n_queries - n_synonym), ("synonym", n_synonym)):
        made = 0
        if family == "synonym":
            rng = random.Random(f"queries:synonym:{seed}")
        for _ in range(quota * 20):
            if made >= quota:
                break
            anchor = attributes[rng.choice(ids)]
            k = rng.choices([1, 2, 3], weights=[0.3, 0.45, 0.25])[0]
            if family == "phrasing":
                chosen = rng.sample(groups, k)
            else:  # one non-default style/mood value, and up to two other constraints
                named = [g for g in styled if not default(g, str(anchor.get(g)))]
                if not named:
                    continue
                first = rng.choice(named)
                chosen = [first, *rng.sample([g for g in groups if g != first], k - 1)]
            if any(g not in anchor for g in chosen):
                continue
            predicate = {g: str(anchor[g]) for g in sorted(chosen)}
            if all(default(g, v) for g, v in predicate.items()):
                continue
            key = json.dumps(predicate, sort_keys=True)
            if key in seen:
                continue
            seen.add(key)
            mask = np.logical_and.reduce([columns[g] == v for g, v in predicate.items()])
            relevant = id_array[mask].tolist()
            if not relevant:
                continue
            text = (heldout_query if family == "phrasing" else synonym_query)(predicate, rng)
            out.append(
                {"query": text, "relevant": relevant, "attributes": predicate, "family": family}
            )
            made += 1
    return out


def _make_chunk(task: tuple[str, int, int, int, int, int, int]) -> dict[str, Any]:
    """Generate, describe and save one chunk; returns its metadata lines and attributes.

    Runs in a worker process or in-process; the output depends only on ``(seed, chunk)``,
    so any number of workers gives the same bytes.
    """
    root, seed, chunk, start, n, per_sequence, n_preview = task
    rng = np.random.default_rng([seed, chunk])
    describer = TemplateDescriber(seed=seed)
    attrs = [sample_attributes(rng) for _ in range(n)]
    frames = rng.integers(MIN_FRAMES, MAX_FRAMES + 1, n).tolist()
    fps = [float(f) for f in rng.choice([25.0, 30.0], n)]
    arrays, extras = generate_batch(attrs, rng, frames, fps)
    lines, ids = [], []
    for i in range(n):
        seq_id = f"syn-{start + i:06d}"
        texts = describer.describe(attrs[i], per_sequence + int(rng.integers(0, 2)), seq_id)
        record = SequenceRecord(
            id=seq_id,
            fps=fps[i],
            source="synthetic",
            attributes={**attrs[i], **extras[i]},
            description=texts[0],
            descriptions=texts,
        )
        # What GalleryWriter.add does, so that workers can write their own files.
        arr = validate_sequence(arrays[i], seq_id)
        np.save(sequence_path(Path(root), seq_id), arr, allow_pickle=False)
        lines.append(record_to_json(record))
        ids.append(seq_id)
    return {
        "lines": lines,
        "attributes": dict(zip(ids, attrs, strict=True)),
        "frames": int(sum(frames)),
        "preview": [(ids[i], arrays[i], attrs[i]) for i in range(min(n_preview, n))],
    }


def synthesize_gallery(
    out_dir: Path | str,
    count: int,
    seed: int,
    preview: Path | str | None = None,
    per_sequence: int = 4,
    on_progress: Callable[[int], None] | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Write ``count`` synthetic sequences, their metadata and ``queries.jsonl`` to ``out_dir``.

    Returns a summary (counts, attribute histograms, paths). ``out_dir`` must be empty or
    absent (:class:`GalleryError` otherwise). ``workers`` > 1 generates chunks in that many
    processes; the output is byte-identical whatever the number of workers.
    ``on_progress(done)`` is called with the number of sequences written so far.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    if seed < 0:
        raise ValueError("seed must be a non-negative integer")
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise GalleryError(f"{out_dir}: exists and is not an empty directory")
    (out_dir / SEQUENCES_DIR).mkdir(parents=True, exist_ok=True)
    n_preview = 12 if preview is not None else 0
    tasks = [
        (str(out_dir), seed, chunk, start, min(CHUNK, count - start), per_sequence, n_preview)
        for chunk, start in enumerate(range(0, count, CHUNK))
    ]
    all_attrs: dict[str, dict[str, Any]] = {}
    preview_items: list[tuple[str, np.ndarray, dict[str, Any]]] = []
    frames_total = 0
    done = 0
    pool = None
    if workers > 1 and len(tasks) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(
            min(workers, len(tasks)), mp_context=multiprocessing.get_context("spawn")
        )
        results = pool.map(_make_chunk, tasks)
    else:
        results = map(_make_chunk, tasks)
    try:
        with (out_dir / METADATA_FILE).open("w", encoding="utf-8") as fh:
            for result in results:
                fh.write("".join(line + "\n" for line in result["lines"]))
                all_attrs.update(result["attributes"])
                frames_total += result["frames"]
                preview_items += result["preview"][: n_preview - len(preview_items)]
                done += len(result["lines"])
                if on_progress:
                    on_progress(done)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
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
