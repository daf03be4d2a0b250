"""Import BVH motion capture into the gallery format (``gaitsearch import bvh``).

A BVH file (HIERARCHY + MOTION, any channel order, Euler angles in degrees) is run through
forward kinematics, its joints are mapped by name onto OpenPose-18 (CMU, CMU-Daz, 100STYLE and
Mixamo-like skeletons; nose, eyes and ears are placed on the head with a forward offset), and
the 3D joints are seen by orthographic cameras at the front, oblique and side of the walking
direction (estimated per window from the root trajectory, so 'side' is side-on even when the
subject turns between windows). The up axis (y or z) comes from the hierarchy. Frames are
resampled to ``fps`` (after dropping the calibration pose a take may open on: leading frames
that jump faster than a body moves) and cut into fixed-length windows with a stride; each
window records its source clip id (``clip``) and its view, so evaluation can split by clip.

Labels come from a small table the user gives (CSV rows ``file,attribute=value,...`` or a JSON
object ``{file: {attribute: value}}``). Pairs that name a gaitsearch attribute group and value
(or a known alias such as ``style=angry`` -> ``emotion=angry``) become attributes; every label
as given stays in ``attributes["bvh"]``, as the DenseGait importer keeps its raw labels.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gaitsearch.model.attributes import ATTRIBUTES
from gaitsearch.model.gallery import GalleryReport, GalleryWriter, SequenceRecord
from gaitsearch.model.skeleton import NUM_JOINTS, J

SOURCE = "bvh"
VIEWS: tuple[str, ...] = ("front", "oblique", "side")
# Camera azimuth from the walking direction, degrees (front: the subject walks at the camera).
VIEW_AZIMUTH = {"front": 0.0, "oblique": 45.0, "side": 90.0, "back": 180.0}
BODY_PIXELS = 320.0  # head top to ankle, in pixels (a person in a 1280x720 frame)
IMAGE_CENTER = (640.0, 360.0)


# Free labels (any key, or as the value of ``label=``/``style=``/``emotion=``) -> (group, value).
ALIASES: dict[str, tuple[str, str]] = {
    "angry": ("emotion", "angry"),
    "elated": ("emotion", "happy"),
    "happy": ("emotion", "happy"),
    "sad": ("emotion", "sad"),
    "depressed": ("emotion", "sad"),
    "proud": ("emotion", "proud"),
    "afraid": ("emotion", "fearful"),
    "fearful": ("emotion", "fearful"),
    "rushed": ("pace", "brisk"),
    "hurried": ("pace", "brisk"),
    "walk": ("pace", "normal"),
    "slow_walk": ("pace", "slow"),
    "brisk_walk": ("pace", "brisk"),
    "run": ("pace", "running"),
    "exaggerated_stride": ("step", "long_strides"),
    "long_strides": ("step", "long_strides"),
    "strutting": ("style", "swagger"),
    "marching": ("style", "marching"),
    "sneaking": ("style", "sneaking"),
    "tired": ("energy", "tired"),
    "old": ("age", "elderly"),
}

# OpenPose joint -> candidate BVH names, normalised (lower case, letters and digits only,
# Mixamo's "mixamorig" prefix dropped), best first. "rightarm" before "rightshoulder": in the
# CMU skeleton RightShoulder is the clavicle, in 100STYLE it is the upper arm.
_SIDE = {"r": ("right", "r"), "l": ("left", "l")}
_LIMBS: dict[str, tuple[str, ...]] = {
    "shoulder": ("arm", "upperarm", "shldr", "shoulder", "humerus"),
    "elbow": ("forearm", "lowerarm", "elbow", "radius"),
    "wrist": ("hand", "wrist"),
    "hip": ("upleg", "upperleg", "thigh", "hip", "femur"),
    "knee": ("leg", "lowerleg", "shin", "knee", "calf", "tibia"),
    "ankle": ("foot", "ankle"),
}
NECK_NAMES = ("neck", "neck1", "lowerneck", "upperneck")
HEAD_NAMES = ("head",)


class BvhError(ValueError):
    """A BVH file or label table that cannot be imported; the message names it and the problem."""


@dataclass
class Bvh:
    """A parsed BVH file: joints in file order (parents before children)."""

    names: list[str]
    parents: list[int]
    offsets: np.ndarray  # (J, 3)
    channels: list[list[str]]
    end_sites: dict[int, np.ndarray]  # joint index -> end-site offset
    frame_time: float
    motion: np.ndarray  # (F, sum of channels)
    where: str = "bvh"

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time


_CHANNELS = {"Xposition", "Yposition", "Zposition", "Xrotation", "Yrotation", "Zrotation"}


def parse_bvh(text: str, where: str = "bvh") -> Bvh:
    """Parse BVH text; raises BvhError naming ``where`` and the problem."""
    head, sep, tail = text.partition("MOTION")
    if "HIERARCHY" not in head:
        raise BvhError(f"{where}: no HIERARCHY section")
    if not sep:
        raise BvhError(f"{where}: no MOTION section")
    tokens = head.split("HIERARCHY", 1)[1].split()
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[list[str]] = []
    end_sites: dict[int, np.ndarray] = {}
    stack: list[int] = []
    pending: int | None = None  # joint (or -2 for an end site) whose '{' comes next
    end_offset_for: int | None = None
    i = 0

    def number(k: int) -> float:
        try:
            return float(tokens[k])
        except (IndexError, ValueError) as exc:
            got = tokens[k] if k < len(tokens) else "end of hierarchy"
            raise BvhError(f"{where}: expected a number in the hierarchy, got {got!r}") from exc

    while i < len(tokens):
        tok = tokens[i]
        if tok in ("ROOT", "JOINT"):
            if i + 1 >= len(tokens):
                raise BvhError(f"{where}: {tok} without a name")
            if tok == "ROOT" and names:
                raise BvhError(f"{where}: more than one ROOT (only one skeleton is read)")
            names.append(tokens[i + 1])
            parents.append(stack[-1] if stack else -1)
            offsets.append([0.0, 0.0, 0.0])
            channels.append([])
            pending = len(names) - 1
            i += 2
        elif tok == "End":
            if not stack:
                raise BvhError(f"{where}: End Site outside a joint")
            pending = -2
            end_offset_for = stack[-1]
            i += 2
        elif tok == "{":
            if pending is None:
                raise BvhError(f"{where}: unexpected '{{' in the hierarchy")
            stack.append(pending)
            pending = None
            i += 1
        elif tok == "}":
            if not stack:
                raise BvhError(f"{where}: unbalanced '}}' in the hierarchy")
            stack.pop()
            i += 1
        elif tok == "OFFSET":
            vec = [number(i + 1), number(i + 2), number(i + 3)]
            if stack and stack[-1] == -2 and end_offset_for is not None:
                end_sites[end_offset_for] = np.asarray(vec)
            elif stack:
                offsets[stack[-1]] = vec
            i += 4
        elif tok == "CHANNELS":
            if not stack or stack[-1] < 0:
                raise BvhError(f"{where}: CHANNELS outside a joint")
            count = number(i + 1)
            if count != int(count) or not 0 <= count <= 6:
                raise BvhError(f"{where}: bad channel count {tokens[i + 1]!r}")
            chans = tokens[i + 2 : i + 2 + int(count)]
            bad = [c for c in chans if c not in _CHANNELS]
            if len(chans) != int(count) or bad:
                joint = names[stack[-1]]
                raise BvhError(
                    f"{where}: joint {joint!r} declares {int(count)} channels but lists "
                    f"{' '.join(chans)!r}"
                )
            channels[stack[-1]] = chans
            i += 2 + int(count)
            if i < len(tokens) and tokens[i] in _CHANNELS:
                raise BvhError(
                    f"{where}: joint {names[stack[-1]]!r} declares {int(count)} channels but "
                    f"lists more ({' '.join(chans)} {tokens[i]} ...)"
                )
        else:
            raise BvhError(f"{where}: unexpected {tok!r} in the hierarchy")
    if stack:
        raise BvhError(f"{where}: hierarchy not closed (missing '}}')")
    if not names:
        raise BvhError(f"{where}: no joints in the hierarchy")

    lines = tail.strip().splitlines()
    frames_m = re.match(r"\s*Frames:\s*(\S+)", lines[0]) if lines else None
    time_m = re.match(r"\s*Frame\s+Time:\s*(\S+)", lines[1]) if len(lines) > 1 else None
    if frames_m is None or time_m is None:
        raise BvhError(f"{where}: MOTION needs 'Frames:' and 'Frame Time:' lines")
    try:
        n_frames = int(frames_m.group(1))
        frame_time = float(time_m.group(1))
    except ValueError as exc:
        raise BvhError(f"{where}: non-numeric Frames/Frame Time ({exc})") from exc
    if not 0 < frame_time <= 1 or not np.isfinite(frame_time):
        raise BvhError(f"{where}: Frame Time {frame_time} is not a plausible frame interval")
    width = sum(len(c) for c in channels)
    rows = [ln for ln in lines[2:] if ln.strip()]
    if len(rows) < n_frames:
        raise BvhError(f"{where}: truncated: header says {n_frames} frames, found {len(rows)}")
    rows = rows[:n_frames]
    lengths = [len(ln.split()) for ln in rows]
    wrong = next((k for k, n in enumerate(lengths) if n != width), None)
    if wrong is not None:
        raise BvhError(
            f"{where}: the hierarchy declares {width} channels but motion frame {wrong + 1} "
            f"has {lengths[wrong]} values"
        )
    try:
        motion = np.array([[float(v) for v in ln.split()] for ln in rows], dtype=np.float64)
    except ValueError as exc:
        frame = next(k for k, ln in enumerate(rows) if not _numeric(ln))
        raise BvhError(f"{where}: non-numeric value in motion frame {frame + 1}") from exc
    if not np.isfinite(motion).all():
        raise BvhError(f"{where}: non-finite value in the motion data")
    return Bvh(names, parents, np.asarray(offsets, float), channels, end_sites, frame_time,
               motion.reshape(n_frames, width), where)  # fmt: skip


def _numeric(line: str) -> bool:
    try:
        [float(v) for v in line.split()]
    except ValueError:
        return False
    return True


def read_bvh(path: Path | str) -> Bvh:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise BvhError(f"{path}: not a text BVH file") from exc
    except OSError as exc:
        raise BvhError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return parse_bvh(text, str(path))


def _axis_rotation(axis: str, deg: np.ndarray) -> np.ndarray:
    """(F, 3, 3) rotation matrices about one axis by ``deg`` degrees."""
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    one, zero = np.ones_like(a), np.zeros_like(a)
    if axis == "X":
        rows = [[one, zero, zero], [zero, c, -s], [zero, s, c]]
    elif axis == "Y":
        rows = [[c, zero, s], [zero, one, zero], [-s, zero, c]]
    else:
        rows = [[c, -s, zero], [s, c, zero], [zero, zero, one]]
    return np.stack([np.stack(r, -1) for r in rows], -2)


def forward_kinematics(bvh: Bvh) -> tuple[np.ndarray, np.ndarray]:
    """World positions ``(F, J, 3)`` of every joint, and ``(F, J, 3)`` of end sites (or NaN).

    Rotations compose in the order the channels are listed (v_parent = R1 R2 R3 v_local), the
    BVH convention; position channels replace the joint's offset.
    """
    n_frames = bvh.motion.shape[0]
    n = len(bvh.names)
    pos = np.zeros((n_frames, n, 3))
    ends = np.full((n_frames, n, 3), np.nan)
    rot = np.zeros((n_frames, n, 3, 3))
    col = 0
    for j in range(n):
        local_r = np.broadcast_to(np.eye(3), (n_frames, 3, 3)).copy()
        trans = np.broadcast_to(bvh.offsets[j], (n_frames, 3)).copy()
        moved = np.zeros(3, bool)
        for ch in bvh.channels[j]:
            values = bvh.motion[:, col]
            col += 1
            axis = "XYZ".index(ch[0])
            if ch.endswith("position"):
                if not moved[axis]:
                    trans[:, axis] = 0.0
                    moved[axis] = True
                trans[:, axis] += values
            else:
                local_r = local_r @ _axis_rotation(ch[0], values)
        p = bvh.parents[j]
        if p < 0:
            rot[:, j] = local_r
            pos[:, j] = trans
        else:
            rot[:, j] = rot[:, p] @ local_r
            pos[:, j] = pos[:, p] + np.einsum("fij,fj->fi", rot[:, p], trans)
        if j in bvh.end_sites:
            ends[:, j] = pos[:, j] + np.einsum("fij,j->fi", rot[:, j], bvh.end_sites[j])
    return pos, ends


def _norm(name: str) -> str:
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    return key.removeprefix("mixamorig")


def joint_map(names: Sequence[str], where: str = "bvh") -> dict[str, int]:
    """BVH joint index for each body joint OpenPose needs (neck, head, limbs)."""
    index: dict[str, int] = {}
    for k, name in enumerate(names):
        index.setdefault(_norm(name), k)
    found: dict[str, int] = {}
    wanted: dict[str, list[str]] = {"neck": list(NECK_NAMES), "head": list(HEAD_NAMES)}
    for side, prefixes in _SIDE.items():
        for limb, stems in _LIMBS.items():
            wanted[f"{side}_{limb}"] = [f"{p}{s}" for s in stems for p in prefixes] + [
                f"{s}{p}" for s in stems for p in (prefixes[0],)
            ]
    missing = []
    for joint, candidates in wanted.items():
        hit = next((index[c] for c in candidates if c in index), None)
        if hit is None:
            missing.append(joint)
        else:
            found[joint] = hit
    if missing:
        raise BvhError(
            f"{where}: cannot map {', '.join(missing)} onto this skeleton's joints "
            f"({', '.join(names[:12])}{', ...' if len(names) > 12 else ''})"
        )
    return found


def up_axis(bvh: Bvh, jmap: Mapping[str, int]) -> np.ndarray:
    """The world up vector (+-y or +-z): the rest-pose direction from the ankles to the head."""
    rest = np.zeros((len(bvh.names), 3))
    for j, p in enumerate(bvh.parents):
        rest[j] = bvh.offsets[j] + (rest[p] if p >= 0 else 0.0)
    d = rest[jmap["head"]] - 0.5 * (rest[jmap["l_ankle"]] + rest[jmap["r_ankle"]])
    axis = int(np.argmax(np.abs(d[1:]))) + 1  # y or z
    up = np.zeros(3)
    up[axis] = np.sign(d[axis]) or 1.0
    return up


def openpose_3d(bvh: Bvh) -> tuple[np.ndarray, np.ndarray]:
    """``(F, 18, 3)`` world joints in OpenPose-18 order, and the up vector."""
    pos, ends = forward_kinematics(bvh)
    jm = joint_map(bvh.names, bvh.where)
    up = up_axis(bvh, jm)
    out = np.zeros((pos.shape[0], NUM_JOINTS, 3))
    for name in (
        "neck",
        "r_shoulder",
        "r_elbow",
        "r_wrist",
        "l_shoulder",
        "l_elbow",
        "l_wrist",
        "r_hip",
        "r_knee",
        "r_ankle",
        "l_hip",
        "l_knee",
        "l_ankle",
    ):
        out[:, J[name]] = pos[:, jm[name]]  # fmt: skip
    head = pos[:, jm["head"]]
    size = np.linalg.norm(out[:, J["l_shoulder"]] - out[:, J["r_shoulder"]], axis=-1)
    size = np.maximum(np.median(size), 1e-6) * 0.45  # about a head's width
    top = ends[:, jm["head"]]
    if np.isfinite(top).all():
        center = 0.5 * (head + top)
    else:
        center = head + 0.6 * size * up
    left = out[:, J["l_shoulder"]] - out[:, J["r_shoulder"]]
    left -= (left @ up)[:, None] * up
    left /= np.maximum(np.linalg.norm(left, axis=-1, keepdims=True), 1e-9)
    fwd = _facing(left, up)
    out[:, J["nose"]] = center + 0.9 * size * fwd - 0.15 * size * up
    for side, sgn in (("r", -1.0), ("l", 1.0)):
        eye = center + 0.75 * size * fwd + 0.1 * size * up
        out[:, J[f"{side}_eye"]] = eye + sgn * 0.3 * size * left
        out[:, J[f"{side}_ear"]] = center + 0.1 * size * fwd + sgn * 0.65 * size * left
    return out, up


def _facing(left: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Forward = left x up in a right-handed frame (facing +z with y up, left is +x)."""
    f = np.cross(left, up)
    return f / np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-9)


# A leading frame whose joints jump faster than this (statures per second, about 10 m/s) and
# than JUMP_RATIO times the clip's median frame-to-frame joint speed is a calibration pose,
# not motion: many motion-capture takes (CMU's among them) open on a T-pose blended into the
# first frames of the walk in a few hundredths of a second.
JUMP_SPEED, JUMP_RATIO = 6.0, 3.0


def leading_jumps(joints: np.ndarray, up: np.ndarray, fps: float) -> int:
    """How many leading frames (within the first second) jump to the next frame faster than a
    body moves (:data:`JUMP_SPEED`, :data:`JUMP_RATIO`): the calibration pose a take opens on."""
    n = joints.shape[0]
    if n < 3:
        return 0
    ankles = 0.5 * (joints[:, J["l_ankle"]] + joints[:, J["r_ankle"]])
    stature = float(np.median((joints[:, J["neck"]] - ankles) @ up)) / 0.78
    if not np.isfinite(stature) or stature <= 0:
        return 0
    speed = np.linalg.norm(np.diff(joints, axis=0), axis=-1).max(axis=-1) * fps / stature
    limit = max(JUMP_SPEED, JUMP_RATIO * float(np.median(speed)))
    drop = 0
    while drop < min(len(speed) - 1, int(fps)) and speed[drop] > limit:
        drop += 1
    return drop


def resample(x: np.ndarray, src_fps: float, dst_fps: float) -> np.ndarray:
    """Linear interpolation of ``(F, ...)`` frames from ``src_fps`` to ``dst_fps``."""
    n = x.shape[0]
    if n < 2 or abs(src_fps - dst_fps) < 1e-6:
        return x.copy()
    t_src = np.arange(n) / src_fps
    t_dst = np.arange(0.0, t_src[-1] + 1e-9, 1.0 / dst_fps)
    flat = x.reshape(n, -1)
    out = np.stack([np.interp(t_dst, t_src, flat[:, k]) for k in range(flat.shape[1])], -1)
    return out.reshape((len(t_dst), *x.shape[1:]))


def walking_direction(joints: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, bool]:
    """Unit horizontal walking direction of a window, and whether the subject walks forwards.

    From the root (mid-hip) trajectory; the body's facing when it hardly moves (in place).
    """
    root = 0.5 * (joints[:, J["l_hip"]] + joints[:, J["r_hip"]])
    disp = root[-1] - root[0]
    disp -= (disp @ up) * up
    left = (joints[:, J["l_hip"]] - joints[:, J["r_hip"]]).mean(0)
    left -= (left @ up) * up
    facing = _facing(left[None], up)[0]
    hip_width = np.linalg.norm(left)
    if np.linalg.norm(disp) < 2.0 * hip_width:
        return facing, True
    d = disp / np.linalg.norm(disp)
    return d, bool(d @ facing >= 0)


def project(joints: np.ndarray, up: np.ndarray, direction: np.ndarray, view: str,
            body: float) -> np.ndarray:  # fmt: skip
    """Orthographic image ``(T, 18, 3)``: x, y pixels (y down), confidence 1.

    The camera sits at azimuth VIEW_AZIMUTH[view] from the walking direction, looking
    horizontally at the subject; ``body`` (world units, head top to ankle) maps to
    BODY_PIXELS. The window's mean position lands at the image centre.
    """
    az = np.radians(VIEW_AZIMUTH[view])
    side = np.cross(direction, up)  # the walker's right
    cam_pos_dir = np.cos(az) * direction + np.sin(az) * side  # camera position from subject
    look = -cam_pos_dir
    right = np.cross(look, up)
    scale = BODY_PIXELS / max(body, 1e-9)
    rel = joints - joints.reshape(-1, 3).mean(0)
    out = np.ones((*joints.shape[:2], 3), np.float32)
    out[..., 0] = IMAGE_CENTER[0] + scale * (rel @ right)
    out[..., 1] = IMAGE_CENTER[1] - scale * (rel @ up)
    return out


def windows(n: int, length: int, stride: int) -> list[int]:
    """Start frames of the full windows of ``length`` frames, every ``stride`` frames."""
    return list(range(0, n - length + 1, stride)) if n >= length else []


# ---------------------------------------------------------------------------- labels


def map_labels(labels: Mapping[str, str]) -> dict[str, Any]:
    """Vocabulary attributes from ``{attribute: value}`` labels; raw labels in ``bvh``."""
    vocab = ATTRIBUTES
    attrs: dict[str, Any] = {}
    for key, value in labels.items():
        k, v = key.strip().lower(), str(value).strip().lower().replace(" ", "_")
        if k in vocab and v in vocab[k]:
            attrs[k] = v
        elif v in ALIASES and ALIASES[v][0] not in attrs:
            attrs[ALIASES[v][0]] = ALIASES[v][1]
        elif k in ALIASES and v in ("1", "true", "yes", "") and ALIASES[k][0] not in attrs:
            attrs[ALIASES[k][0]] = ALIASES[k][1]
    attrs["bvh"] = {str(k): str(v) for k, v in sorted(labels.items())}
    return attrs


def read_label_table(path: Path | str) -> dict[str, dict[str, str]]:
    """``{file stem: {attribute: value}}`` from CSV rows ``file,attr=value,...`` or JSON."""
    path = Path(path)
    if not path.is_file():
        raise BvhError(f"{path}: label table not found")
    table: dict[str, dict[str, str]] = {}
    try:
        if path.suffix.lower() == ".json":
            doc = json.loads(path.read_text(encoding="utf-8"))
            pairs: Any = doc.items() if isinstance(doc, dict) else None
            if isinstance(doc, list):
                pairs = [(r.get("file"), {k: v for k, v in r.items() if k != "file"})
                        for r in doc if isinstance(r, dict)]  # fmt: skip
            if pairs is None:
                raise BvhError(f"{path}: expected a JSON object or list of rows")
            for name, labels in pairs:
                if not name or not isinstance(labels, dict):
                    raise BvhError(f"{path}: every row needs a file and an object of labels")
                table[Path(str(name)).stem] = {str(k): str(v) for k, v in labels.items()}
        else:
            with path.open(newline="", encoding="utf-8") as fh:
                for n, row in enumerate(csv.reader(fh), 1):
                    cells = [c.strip() for c in row if c.strip()]
                    if not cells or cells[0].startswith("#") or cells[0].lower() == "file":
                        continue
                    labels = {}
                    for cell in cells[1:]:
                        key, eq, value = cell.partition("=")
                        if not eq or not key.strip():
                            raise BvhError(f"{path}: line {n}: {cell!r} is not attribute=value")
                        labels[key.strip()] = value.strip()
                    table[Path(cells[0]).stem] = labels
    except (json.JSONDecodeError, UnicodeDecodeError, csv.Error) as exc:
        raise BvhError(f"{path}: not a readable table ({exc})") from exc
    if not table:
        raise BvhError(f"{path}: no rows")
    return table


_WORDS = {
    ("pace", "slow"): "slowly", ("pace", "brisk"): "briskly", ("pace", "running"): "running",
    ("emotion", "angry"): "angrily", ("emotion", "happy"): "happily", ("emotion", "sad"): "sadly",
    ("emotion", "proud"): "proudly", ("emotion", "fearful"): "fearfully",
    ("step", "long_strides"): "with long strides", ("energy", "tired"): "tiredly",
    ("style", "swagger"): "with a swagger", ("style", "marching"): "marching",
    ("style", "sneaking"): "sneaking",
}  # fmt: skip


_SEEN = {"front": "seen from the front", "back": "seen from behind",
         "side": "seen from the side", "oblique": "seen at an angle"}  # fmt: skip


def caption(attrs: Mapping[str, Any], view: str) -> str:
    words = [w for (g, v), w in _WORDS.items() if attrs.get(g) == v]
    return " ".join(["A person walking", *words, f"{_SEEN.get(view, 'seen from the ' + view)}."])


# ---------------------------------------------------------------------------- import


@dataclass
class BvhImportReport(GalleryReport):
    clips: int = 0
    windows_per_clip: dict[str, int] = field(default_factory=dict)
    turning_windows: int = 0
    opening_frames: int = 0  # calibration-pose frames dropped at the start of takes


def _turn_degrees(joints: np.ndarray, up: np.ndarray) -> float:
    """How far a window strays from a straight forward walk, degrees: the larger of the turn
    between its halves' mean facing (hips and shoulders) and the angle between the mean facing
    and the root's travel. 180 when it walks backwards or hardly travels (idle, turning on the
    spot): fewer than 0.35 body heights."""
    left = (joints[:, J["l_hip"]] - joints[:, J["r_hip"]]) + (
        joints[:, J["l_shoulder"]] - joints[:, J["r_shoulder"]]
    )
    left -= (left @ up)[:, None] * up
    half = len(joints) // 2
    first, second = (_facing(left[sl].mean(0, keepdims=True), up)[0]
                     for sl in (slice(0, half), slice(half, None)))  # fmt: skip
    mean = _facing(left.mean(0, keepdims=True), up)[0]
    root = 0.5 * (joints[:, J["l_hip"]] + joints[:, J["r_hip"]])
    travel = root[-1] - root[0]
    travel -= (travel @ up) * up
    height = float(np.median((joints[:, J["neck"]] - joints[:, J["l_ankle"]]) @ up)) * 1.2
    if np.linalg.norm(travel) < 0.35 * max(height, 1e-9):
        return 180.0
    d = travel / np.linalg.norm(travel)
    angles = np.degrees(np.arccos(np.clip([first @ second, mean @ d], -1.0, 1.0)))
    return float(angles.max())


def import_bvh(
    files: Sequence[Path | str],
    labels: Path | str | None,
    out: Path | str,
    fps: float = 25.0,
    window: int = 64,
    stride: int = 32,
    views: Sequence[str] = VIEWS,
    strict: bool = False,
    on_progress: Callable[[int], None] | None = None,
    max_windows: int | None = None,
) -> BvhImportReport:
    """Import BVH files into a new gallery at ``out`` (written to a temp dir, then renamed)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BvhError(f"{out}: exists and is not an empty directory (choose a new --out)")
    bad_views = [v for v in views if v not in VIEW_AZIMUTH]
    if bad_views:
        raise BvhError(f"unknown view {bad_views[0]!r}; known: {list(VIEW_AZIMUTH)}")
    if window < 8 or stride < 1:
        raise BvhError("--window must be >= 8 frames and --stride >= 1")
    table = read_label_table(labels) if labels is not None else {}
    paths = [Path(f) for f in files]
    if not paths:
        raise BvhError("no BVH files given")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    report = BvhImportReport()
    try:
        with GalleryWriter(tmp) as writer:
            for k, path in enumerate(paths):
                try:
                    _import_one(
                        writer, report, path, table, fps, window, stride, views, max_windows
                    )
                except BvhError as exc:
                    if strict:
                        raise
                    report.problems.append(str(exc).splitlines()[0])
                if on_progress:
                    on_progress(k + 1)
        if report.ok == 0:
            first = report.problems[0] if report.problems else f"{out}: no windows"
            more = (
                f"; {len(report.problems) - 1} more bad files" if len(report.problems) > 1 else ""
            )
            raise BvhError(f"{first} (nothing imported{more})")
        if out.exists():
            out.rmdir()
        tmp.replace(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return report


def _import_one(
    writer: GalleryWriter,
    report: BvhImportReport,
    path: Path,
    table: Mapping[str, Mapping[str, str]],
    fps: float,
    window: int,
    stride: int,
    views: Sequence[str],
    max_windows: int | None = None,
    max_turn: float = 30.0,
) -> None:
    clip = path.stem
    if table and clip not in table:
        raise BvhError(f"{path}: no row for {clip!r} in the label table")
    bvh = read_bvh(path)
    joints, up = openpose_3d(bvh)
    opening = leading_jumps(joints, up, bvh.fps)
    joints = joints[opening:]
    joints = resample(joints, bvh.fps, fps)
    starts = windows(joints.shape[0], window, stride)
    if not starts:
        raise BvhError(
            f"{path}: {joints.shape[0]} frames at {fps:g} fps, shorter than one "
            f"{window}-frame window"
        )
    straight = [s for s in starts if _turn_degrees(joints[s : s + window], up) <= max_turn]
    if not straight:
        raise BvhError(
            f"{path}: no window where the subject walks straight and forwards "
            f"(within {max_turn:g} degrees)"
        )
    report.turning_windows += len(starts) - len(straight)
    report.opening_frames += opening
    starts = straight
    if max_windows and len(starts) > max_windows:  # evenly spread over the clip
        starts = [starts[int(k)] for k in np.linspace(0, len(starts) - 1, max_windows)]
    attrs = map_labels(table.get(clip, {}))
    ankle = 0.5 * (joints[:, J["l_ankle"]] + joints[:, J["r_ankle"]])
    crown = joints[:, J["nose"]]
    body = float(np.median((crown - ankle) @ up)) * 1.12  # nose is below the head top
    n = 0
    for w, s in enumerate(starts):
        seg = joints[s : s + window]
        direction, forwards = walking_direction(seg, up)
        for view in views:
            arr = project(seg, up, direction, view, body)
            a = {**attrs, "view": view}
            record = SequenceRecord(
                id=f"{clip}_{view}_w{w:03d}",
                fps=fps,
                source=SOURCE,
                attributes=a,
                description=caption(a, view),
                clip=clip,
                view=view,
                start_s=round(s / fps, 3),
                walking_forwards=forwards,
            )
            writer.add(record, arr)
            report.ok += 1
            n += 1
    report.clips += 1
    report.windows_per_clip[clip] = n
