"""Import DenseGait (and the paper's training file) into the gallery format.

Two layouts (see ../shared/DENSEGAIT.md and ``gaitsearch import densegait --help``):

(a) per-tracklet arrays ``<id>.npy`` ``(T, 18, 3)`` with a CSV/JSON table of soft labels;
(b) the paper's joblib list of ``{"joints", "text", "feature_id"}`` records.

DenseGait labels map onto the gaitsearch vocabulary where the mapping is clear; the raw
labels always stay in ``attributes["densegait"]``. Copies stored with y pointing up are
detected (head above feet) and flipped. Captions present in the input are kept; the rest
are written from the labels.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from gaitsearch.model.gallery import GalleryReport, GalleryWriter, SequenceRecord
from gaitsearch.model.skeleton import SkeletonError, validate_sequence, y_points_down
from pydantic import ValidationError

SOURCE = "densegait"

# The paper's 36-label vocabulary (label strings exactly as its reference code writes them).
DENSEGAIT_LABELS: tuple[str, ...] = (
    "male", "female", "child", "young-adult", "adult", "middle-aged adult", "senior", "slim",
    "normal weight", "overweight", "front", "side", "back", "carry something in hand",
    "backpack", "bag", "hand trunk", "pulling", "holding something", "boots", "sneakers",
    "sports shoes", "leather shoes", "cloth shoes", "sandals", "shoes", "casual", "formal",
    "jacket", "long coat", "dress", "trousers", "long trousers", "calling", "talking",
    "gathering",
)  # fmt: skip

# DenseGait label -> (gaitsearch group, value), only where the meaning is clearly the same.
LABEL_MAP: dict[str, tuple[str, str]] = {
    "male": ("gender", "male"),
    "female": ("gender", "female"),
    "child": ("age", "child"),
    "young-adult": ("age", "young"),
    "adult": ("age", "adult"),
    "middle-aged adult": ("age", "adult"),
    "senior": ("age", "elderly"),
    "slim": ("build", "slim"),
    "normal weight": ("build", "average"),
    "overweight": ("build", "heavy"),
    "front": ("view", "front"),
    "side": ("view", "side"),
    "back": ("view", "back"),
    "backpack": ("carrying", "backpack"),
    "bag": ("carrying", "handbag"),
    "hand trunk": ("carrying", "suitcase"),
    "pulling": ("carrying", "suitcase"),
    "calling": ("carrying", "phone_call"),
    "boots": ("footwear", "boots"),
    "sneakers": ("footwear", "flat"),
    "sports shoes": ("footwear", "flat"),
    "cloth shoes": ("footwear", "flat"),
    "sandals": ("footwear", "flat"),
}


class DenseGaitError(ValueError):
    """An input file that cannot be imported; the message names it and the problem."""


def map_labels(scores: Mapping[str, float], threshold: float = 0.5) -> dict[str, Any]:
    """Our vocabulary's attributes from DenseGait label scores, plus the raw labels.

    Per group the highest-scoring mapped label at or above ``threshold`` wins.
    """
    best: dict[str, tuple[float, str]] = {}
    for label, score in scores.items():
        if label in LABEL_MAP and score >= threshold:
            group, value = LABEL_MAP[label]
            if group not in best or score > best[group][0]:
                best[group] = (score, value)
    attrs: dict[str, Any] = {group: value for group, (_, value) in best.items()}
    attrs["densegait"] = {k: round(float(v), 4) for k, v in sorted(scores.items())}
    return attrs


def caption_from_labels(labels: Iterable[str]) -> str:
    """A plain English sentence from present DenseGait labels (when no caption exists)."""
    present = set(labels)
    who = "woman" if "female" in present else "man" if "male" in present else "person"
    age = next(
        (w for lab, w in (("child", "young"), ("young-adult", "young"), ("adult", "adult"),
                          ("middle-aged adult", "middle-aged"), ("senior", "elderly"))
         if lab in present),
        "",
    )  # fmt: skip
    if "child" in present:
        who = "child"
        age = ""
    build = {"slim": "slim", "normal weight": "", "overweight": "heavy-set"}
    shape = next((build[b] for b in build if b in present), "")
    words = " ".join(w for w in (age, shape, who) if w)
    article = "An" if words[:1].lower() in "aeiou" else "A"
    parts = [f"{article} {words} walking"]
    view = next((v for v in ("front", "side", "back") if v in present), None)
    if view:
        parts.append(f"seen from the {view}")
    clothes = [c for c in ("jacket", "long coat", "dress", "long trousers", "trousers")
               if c in present]  # fmt: skip
    shoes = [s for s in ("boots", "sneakers", "sports shoes", "leather shoes", "cloth shoes",
                         "sandals") if s in present]  # fmt: skip
    worn = clothes + shoes
    if worn:
        parts.append("wearing " + " and ".join(worn))
    carried = [c for c in ("backpack", "bag", "hand trunk") if c in present]
    if carried:
        parts.append("carrying a " + " and a ".join(carried))
    if "pulling" in present:
        parts.append("pulling a suitcase")
    if "calling" in present:
        parts.append("talking on the phone")
    elif "talking" in present:
        parts.append("talking")
    return ", ".join(parts) + "."


def orient(arr: np.ndarray) -> np.ndarray:
    """Flip y when the sequence is stored with y pointing up (feet above the head)."""
    if y_points_down(arr):
        return arr
    out = arr.copy()
    out[..., 1] = -out[..., 1]
    return out


def read_attribute_table(path: Path) -> dict[str, dict[str, Any]]:
    """``{id: {column: value}}`` from a CSV (header row with ``id``) or JSON table."""
    if not path.is_file():
        raise DenseGaitError(f"{path}: attribute table not found")
    try:
        if path.suffix.lower() == ".json":
            doc = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(doc, dict):
                rows = [{"id": k, **v} for k, v in doc.items() if isinstance(v, dict)]
            elif isinstance(doc, list):
                rows = [r for r in doc if isinstance(r, dict)]
            else:
                raise DenseGaitError(f"{path}: expected a JSON list or object of rows")
        else:
            with path.open(newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
    except (json.JSONDecodeError, UnicodeDecodeError, csv.Error) as exc:
        raise DenseGaitError(f"{path}: not a readable table ({exc})") from exc
    table: dict[str, dict[str, Any]] = {}
    for i, row in enumerate(rows):
        if "id" not in row or row["id"] in (None, ""):
            raise DenseGaitError(f"{path}: row {i + 1} has no 'id'")
        table[str(row["id"])] = row
    if not table:
        raise DenseGaitError(f"{path}: no rows")
    return table


def _scores(row: Mapping[str, Any], where: str) -> dict[str, float]:
    scores = {}
    for key, value in row.items():
        if key in ("id", "fps", "description") or value in (None, ""):
            continue
        try:
            score = float(value)
        except (TypeError, ValueError) as exc:
            raise DenseGaitError(f"{where}: label {key!r} has non-numeric score {value!r}") from exc
        if not 0.0 <= score <= 1.0:
            raise DenseGaitError(f"{where}: label {key!r} score {score} outside [0, 1]")
        scores[key] = score
    return scores


def _add(
    writer: GalleryWriter,
    report: GalleryReport,
    seq_id: str,
    joints: Any,
    fps: float,
    attributes: dict[str, Any],
    caption: str | None,
    where: str,
    strict: bool,
) -> None:
    try:
        arr = orient(validate_sequence(joints, where))
        labels = [k for k, v in attributes.get("densegait", {}).items() if v >= 0.5]
        description = caption.strip() if caption and caption.strip() else None
        generated = caption_from_labels(labels)
        record = SequenceRecord(
            id=seq_id,
            fps=fps,
            source=SOURCE,
            attributes=attributes,
            description=description or generated,
            descriptions=[generated] if description and generated != description else None,
        )
        writer.add(record, arr)
        report.ok += 1
    except (SkeletonError, ValidationError, ValueError) as exc:
        message = (
            str(exc).splitlines()[0]
            if not isinstance(exc, ValidationError)
            else (f"{where}: {exc.errors()[0]['msg']}")
        )
        if strict:
            raise DenseGaitError(message) from exc
        report.problems.append(message)


def import_tracklets(
    tracklets: Path | str,
    attributes: Path | str,
    out: Path | str,
    fps: float = 25.0,
    threshold: float = 0.5,
    strict: bool = False,
) -> GalleryReport:
    """Layout (a): ``<id>.npy`` files plus a soft-label table; returns what was imported."""
    tracklets, attributes = Path(tracklets), Path(attributes)
    if not tracklets.is_dir():
        raise DenseGaitError(f"{tracklets}: not a directory of <id>.npy tracklets")
    table = read_attribute_table(attributes)
    report = GalleryReport()
    files = {p.stem: p for p in sorted(tracklets.glob("*.npy"))}
    if not files:
        raise DenseGaitError(f"{tracklets}: no .npy tracklets")
    with GalleryWriter(out) as writer:
        for seq_id, path in files.items():
            row = table.get(seq_id)
            if row is None:
                _note(report, f"{path}: no row for {seq_id!r} in {attributes}", strict)
                continue
            try:
                joints = np.load(path, allow_pickle=False)
                scores = _scores(row, f"{attributes}: {seq_id}")
                rate = float(row.get("fps") or fps)
            except (OSError, ValueError) as exc:
                _note(report, f"{path}: {exc}", strict)
                continue
            attrs = map_labels(scores, threshold)
            # keep the thresholded raw labels for captions, the soft scores in attributes
            _add(writer, report, seq_id, joints, rate, attrs,
                 row.get("description"), str(path), strict)  # fmt: skip
        for seq_id in sorted(set(table) - set(files)):
            report.problems.append(f"{attributes}: row {seq_id!r} has no tracklet file")
    return report


def import_joblib(
    path: Path | str, out: Path | str, fps: float = 25.0, strict: bool = False
) -> GalleryReport:
    """Layout (b): the paper's joblib list of ``{joints, text, feature_id}`` records.

    Loading a joblib file executes code from it: call this only on a path the user named.
    """
    try:
        import joblib
    except ImportError as exc:  # only in the dev extra of pyproject.toml
        raise DenseGaitError("reading the paper's joblib file needs: pip install joblib") from exc

    path = Path(path)
    if not path.is_file():
        raise DenseGaitError(f"{path}: file not found")
    try:
        records = joblib.load(path)
    except Exception as exc:  # noqa: BLE001 - unpickling can fail in many ways
        raise DenseGaitError(f"{path}: not a readable joblib file ({exc})") from exc
    if not isinstance(records, list | tuple):
        raise DenseGaitError(f"{path}: expected a list of records, got {type(records).__name__}")
    report = GalleryReport()
    width = max(6, len(str(len(records))))
    with GalleryWriter(out) as writer:
        for i, rec in enumerate(records):
            where = f"{path}[{i}]"
            if not isinstance(rec, Mapping) or "joints" not in rec:
                _note(report, f"{where}: not a record with 'joints'", strict)
                continue
            labels = [s.strip() for s in str(rec.get("feature_id") or "").split(",") if s.strip()]
            attrs = map_labels(dict.fromkeys(labels, 1.0))
            caption = rec.get("text") if isinstance(rec.get("text"), str) else None
            _add(writer, report, f"dg{i:0{width}d}", rec["joints"], fps, attrs,
                 caption, where, strict)  # fmt: skip
    return report


def _note(report: GalleryReport, message: str, strict: bool) -> None:
    if strict:
        raise DenseGaitError(message)
    report.problems.append(message)
