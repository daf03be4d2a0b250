"""`gaitsearch import bvh`: parsing, forward kinematics, joint map, cameras, windows, labels,
one-line errors, and the clip-level split of datasets/real_walks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gaitsearch.model import bvh as B
from gaitsearch.model.skeleton import J

ROOT = Path(__file__).resolve().parents[1]

# A CMU-named skeleton, y up, facing +z (its left is +x), units cm.
LIMBS = {
    "Spine": ((0, 10, 0), {"Neck": ((0, 40, 0), {"Head": ((0, 10, 0), {})}),
                          "LeftArm": ((18, 35, 0), {"LeftForeArm": ((28, 0, 0),
                                      {"LeftHand": ((25, 0, 0), {})})}),
                          "RightArm": ((-18, 35, 0), {"RightForeArm": ((-28, 0, 0),
                                       {"RightHand": ((-25, 0, 0), {})})})}),
    "LeftUpLeg": ((9, 0, 0), {"LeftLeg": ((0, -45, 0), {"LeftFoot": ((0, -45, 0), {})})}),
    "RightUpLeg": ((-9, 0, 0), {"RightLeg": ((0, -45, 0), {"RightFoot": ((0, -45, 0), {})})}),
}  # fmt: skip
ROT = "Zrotation Xrotation Yrotation"


def _hierarchy(limbs: dict, up_z: bool = False, order: str = ROT) -> tuple[str, list[str]]:
    names: list[str] = []

    def off(v: tuple[float, float, float]) -> str:
        x, y, z = v
        return f"{x} {-z} {y}" if up_z else f"{x} {y} {z}"

    def joint(name: str, spec: tuple, depth: int) -> str:
        offset, children = spec
        names.append(name)
        pad = "  " * depth
        body = f"{pad}JOINT {name}\n{pad}{{\n{pad}  OFFSET {off(offset)}\n"
        body += f"{pad}  CHANNELS 3 {order}\n"
        if children:
            body += "".join(joint(n, s, depth + 1) for n, s in children.items())
        else:
            body += f"{pad}  End Site\n{pad}  {{\n{pad}    OFFSET {off((0, 0, 0) if name != 'Head' else (0, 12, 0))}\n{pad}  }}\n"  # noqa: E501
        return body + f"{pad}}}\n"

    names.append("Hips")
    text = "HIERARCHY\nROOT Hips\n{\n  OFFSET 0 0 0\n"
    text += f"  CHANNELS 6 Xposition Yposition Zposition {order}\n"
    text += "".join(joint(n, s, 1) for n, s in limbs.items()) + "}\n"
    return text, names


def walk_bvh(
    frames: int = 240, fps: float = 60.0, speed: float = 140.0, up_z: bool = False,
    limbs: dict | None = None, heading_deg: float = 0.0,
) -> str:  # fmt: skip
    """A walker along +z (rotated by ``heading_deg`` about up), legs and arms swinging."""
    text, names = _hierarchy(limbs or LIMBS, up_z)
    rows = []
    h = np.radians(heading_deg)
    for f in range(frames):
        t = f / fps
        dist = speed * t
        x, z = dist * np.sin(h), dist * np.cos(h)
        pos = (x, -z, 95.0) if up_z else (x, 95.0, z)
        root = [*pos, 0.0, 0.0, heading_deg]  # Z X Y order: yaw is the third channel (Y)
        if up_z:
            root = [*pos, heading_deg, 0.0, 0.0]  # with z up, yaw is Zrotation
        vals = list(root)
        swing = 25.0 * np.sin(2 * np.pi * 0.9 * t)
        for name in names[1:]:
            rx = {"LeftUpLeg": -swing, "RightUpLeg": swing, "LeftArm": 0.0}.get(name, 0.0)
            vals += [0.0, rx, 0.0]
        rows.append(" ".join(f"{v:.4f}" for v in vals))
    return text + f"MOTION\nFrames: {frames}\nFrame Time: {1 / fps:.6f}\n" + "\n".join(rows) + "\n"


def test_fk_known_rotation_moves_known_joint() -> None:
    text, names = _hierarchy(LIMBS)
    n = len(names)
    zero = ["0"] * (3 + 3 * n)
    frame = list(zero)
    k = names.index("LeftArm")
    frame[3 + 3 * k] = "90"  # LeftArm Zrotation 90: the forearm (+x) swings up to +y
    motion = f"MOTION\nFrames: 2\nFrame Time: 0.04\n{' '.join(zero)}\n{' '.join(frame)}\n"
    b = B.parse_bvh(text + motion, "t.bvh")
    pos, ends = B.forward_kinematics(b)
    arm, fore = names.index("LeftArm"), names.index("LeftForeArm")
    np.testing.assert_allclose(pos[0, fore] - pos[0, arm], [28, 0, 0], atol=1e-9)
    np.testing.assert_allclose(pos[1, fore] - pos[1, arm], [0, 28, 0], atol=1e-9)
    np.testing.assert_allclose(pos[1, arm], pos[0, arm])  # the parent does not move
    # the head's end site sits 12 above the head
    np.testing.assert_allclose(ends[0, names.index("Head")] - pos[0, names.index("Head")],
                               [0, 12, 0])  # fmt: skip


def test_channel_order_composes_in_listed_order() -> None:
    text = (
        "HIERARCHY\nROOT A\n{\n OFFSET 0 0 0\n CHANNELS 6 Xposition Yposition Zposition "
        "Zrotation Xrotation Yrotation\n JOINT B\n {\n  OFFSET 0 0 1\n  CHANNELS 0\n"
        "  End Site\n  {\n   OFFSET 0 0 0\n  }\n }\n}\nMOTION\nFrames: 1\nFrame Time: 0.04\n"
        "1 2 3 90 90 0\n"
    )
    pos, _ = B.forward_kinematics(B.parse_bvh(text))
    # Rz(90) Rx(90) (0,0,1) = Rz(90) (0,-1,0) = (1,0,0); plus the root translation
    np.testing.assert_allclose(pos[0, 1], [2, 2, 3], atol=1e-9)
    np.testing.assert_allclose(pos[0, 0], [1, 2, 3])


def test_joint_map_names() -> None:
    cmu = [
        "Hips",
        "LHipJoint",
        "LeftUpLeg",
        "LeftLeg",
        "LeftFoot",
        "RHipJoint",
        "RightUpLeg",
        "RightLeg",
        "RightFoot",
        "Spine",
        "Neck",
        "Head",
        "LeftShoulder",
        "LeftArm",
        "LeftForeArm",
        "LeftHand",
        "RightShoulder",
        "RightArm",
        "RightForeArm",
        "RightHand",
    ]
    m = B.joint_map(cmu)
    assert cmu[m["l_shoulder"]] == "LeftArm" and cmu[m["r_ankle"]] == "RightFoot"
    style = [
        "Hips",
        "Chest",
        "Neck",
        "Head",
        "RightCollar",
        "RightShoulder",
        "RightElbow",
        "RightWrist",
        "LeftCollar",
        "LeftShoulder",
        "LeftElbow",
        "LeftWrist",
        "RightHip",
        "RightKnee",
        "RightAnkle",
        "LeftHip",
        "LeftKnee",
        "LeftAnkle",
    ]
    m = B.joint_map(style)
    assert style[m["r_shoulder"]] == "RightShoulder" and style[m["l_knee"]] == "LeftKnee"
    daz = [
        "hip",
        "abdomen",
        "chest",
        "neck",
        "head",
        "rCollar",
        "rShldr",
        "rForeArm",
        "rHand",
        "lCollar",
        "lShldr",
        "lForeArm",
        "lHand",
        "rButtock",
        "rThigh",
        "rShin",
        "rFoot",
        "lButtock",
        "lThigh",
        "lShin",
        "lFoot",
    ]
    m = B.joint_map(daz)
    assert daz[m["r_hip"]] == "rThigh" and daz[m["l_elbow"]] == "lForeArm"
    mixamo = [f"mixamorig:{n}" for n in cmu]
    assert B.joint_map(mixamo)["neck"] == cmu.index("Neck")  # fmt: skip
    with pytest.raises(B.BvhError, match=r"x\.bvh: cannot map l_ankle"):
        B.joint_map([n for n in cmu if n != "LeftFoot"], "x.bvh")


def _import(tmp: Path, files: dict[str, str], labels: str | None = None, **kw):  # type: ignore[no-untyped-def]
    src = tmp / "src"
    src.mkdir(exist_ok=True)
    for name, text in files.items():
        (src / name).write_text(text)
    table = None
    if labels is not None:
        table = tmp / "labels.csv"
        table.write_text(labels)
    out = tmp / "out"
    report = B.import_bvh(sorted(src.glob("*.bvh")), table, out, **kw)
    meta = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    arrays = {m["id"]: np.load(out / "sequences" / f"{m['id']}.npy") for m in meta}
    return report, meta, arrays


@pytest.mark.parametrize("up_z", [False, True])
@pytest.mark.parametrize("heading", [0.0, 60.0])
def test_views_windows_and_pixels(tmp_path: Path, up_z: bool, heading: float) -> None:
    # 240 frames at 60 fps = 4 s -> 100 frames at 25 fps -> windows at 0, 16, 32, 48 (of 48)
    report, meta, arrays = _import(tmp_path, {"w.bvh": walk_bvh(up_z=up_z, heading_deg=heading)},
                                   window=48, stride=16)  # fmt: skip
    assert report.clips == 1 and report.ok == 12
    assert sorted({m["view"] for m in meta}) == ["front", "oblique", "side"]
    assert all(m["clip"] == "w" and m["attributes"]["view"] == m["view"] for m in meta)
    seen = {m["view"]: m["description"] for m in meta}
    assert seen["oblique"] == "A person walking seen at an angle."
    assert seen["side"] == "A person walking seen from the side."
    for m in meta:
        a = arrays[m["id"]]
        assert a.shape == (48, 18, 3) and a.dtype == np.float32
        assert (a[..., 2] == 1).all()
        assert (a[:, J["l_ankle"], 1] > a[:, J["neck"], 1]).all()  # y down: feet below
        height = np.median(a[:, J["l_ankle"], 1] - a[:, J["nose"], 1])
        assert 220 < height < 320
        shoulder_dx = np.abs(a[:, J["l_shoulder"], 0] - a[:, J["r_shoulder"], 0]).mean()
        travel = a[-1, J["neck"], 0] - a[0, J["neck"], 0]
        if m["view"] == "side":  # profile: shoulders overlap, walks across the picture
            assert shoulder_dx < 2 and travel > 150
            assert (a[:, J["nose"], 0] > a[:, J["neck"], 0]).all()  # faces where it walks
        elif m["view"] == "front":  # shoulders apart, no sideways travel
            assert shoulder_dx > 40 and abs(travel) < 2
        else:
            assert 20 < shoulder_dx < 60 and 200 < travel < 450


def test_labels_vocabulary_aliases_and_raw(tmp_path: Path) -> None:
    labels = "# comment\nw.bvh,pace=slow,label=angry,mood=grumpy,step=long_strides\n"
    _, meta, _ = _import(tmp_path, {"w.bvh": walk_bvh()}, labels)
    a = meta[0]["attributes"]
    assert a["pace"] == "slow" and a["emotion"] == "angry" and a["step"] == "long_strides"
    assert "mood" not in a and a["bvh"]["mood"] == "grumpy"  # unknown: kept raw only
    assert "slowly" in meta[0]["description"] and "angrily" in meta[0]["description"]
    js = tmp_path / "l.json"
    js.write_text(json.dumps({"w.bvh": {"style": "elated"}}))
    assert B.read_label_table(js) == {"w": {"style": "elated"}}
    assert B.map_labels({"style": "elated"})["emotion"] == "happy"


def test_turning_and_idle_windows_are_dropped(tmp_path: Path) -> None:
    report, meta, _ = _import(tmp_path, {"w.bvh": walk_bvh(), "idle.bvh": walk_bvh(speed=0.0)},
                              window=48, stride=16)  # fmt: skip
    assert {m["clip"] for m in meta} == {"w"}
    assert any("idle.bvh" in p and "straight" in p for p in report.problems)


BAD = {
    "no MOTION": lambda t: t.split("MOTION")[0],
    "truncated": lambda t: "\n".join(t.splitlines()[:-30]),
    "channels": lambda t: t.replace("Frame Time: 0.016667\n", "Frame Time: 0.016667\n1 2 ", 1),
    "non-numeric": lambda t: t.replace("0.016667\n0.0000 ", "0.016667\nabc ", 1),
    "bad count": lambda t: t.replace("CHANNELS 3 Z", "CHANNELS 2 Z", 1),
}
MESSAGES = {
    "no MOTION": "no MOTION section",
    "truncated": "truncated",
    "channels": "declares 51 channels but motion frame 1 has 53",
    "non-numeric": "non-numeric value in motion frame 1",
    "bad count": "declares 2",
}


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_files_give_one_line_naming_the_file(tmp_path: Path, kind: str) -> None:
    from gaitsearch.service.cli import app
    from typer.testing import CliRunner

    bad = tmp_path / f"bad_{kind.replace(' ', '_')}.bvh"
    bad.write_text(BAD[kind](walk_bvh()))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["import", "bvh", str(bad), "--out", str(out)])
    assert result.exit_code != 0
    text = result.output.strip()
    assert len(text.splitlines()) == 1, text
    assert bad.name in text and MESSAGES[kind] in text.split(bad.name, 1)[1], text
    assert not out.exists()  # nothing half-written
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_cli_help_and_good_import(tmp_path: Path) -> None:
    from gaitsearch.service.cli import app
    from typer.testing import CliRunner

    runner = CliRunner()
    help_text = runner.invoke(app, ["import", "bvh", "--help"]).output
    assert "kinematics" in help_text and "--labels" in help_text
    (tmp_path / "a.bvh").write_text(walk_bvh())
    (tmp_path / "b.bvh").write_text(walk_bvh().split("MOTION")[0])
    out = tmp_path / "g"
    result = runner.invoke(app, ["import", "bvh", str(tmp_path), "--out", str(out),
                                 "--window", "48", "--views", "side"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["clips"] == 1 and summary["skipped"] == 1 and summary["windows"] >= 1
    assert summary["opening_frames_dropped"] == 0 and summary["turning_windows"] >= 0
    from gaitsearch.model.gallery import read_metadata

    assert all(r.attributes["view"] == "side" for r in read_metadata(out, strict=True))


def test_real_walks_split_is_by_clip() -> None:
    data = ROOT / "datasets" / "real_walks"
    split = json.loads((data / "split.json").read_text())
    train, test = set(split["train"]), set(split["test"])
    assert not train & test and test
    meta = [
        json.loads(line) for line in (data / "gallery" / "metadata.jsonl").read_text().splitlines()
    ]  # noqa: E501
    clips = {m["clip"] for m in meta}
    assert clips == train | test
    for m in meta:
        assert m["id"].startswith(m["clip"] + "_") and m["view"] in B.VIEWS
    families = {k for m in meta if m["clip"] in test for k in m["attributes"] if k != "bvh"}
    assert {"pace", "emotion", "step"} <= families


def test_real_walks_added_subjects_are_split_by_subject() -> None:
    """The CMU subjects added after 07/08 are each wholly train or wholly test, and the test
    side has normal walks of subjects never seen in train."""
    split = json.loads((ROOT / "datasets" / "real_walks" / "split.json").read_text())
    side = {c: "train" for c in split["train"]} | {c: "test" for c in split["test"]}
    added = {"02", "05", "06", "10", "12"}
    sides = {s: {v for c, v in side.items() if c.split("_")[0] == s} for s in added}
    assert all(len(v) == 1 for v in sides.values()), sides
    assert {s for s, v in sides.items() if v == {"test"}} >= {"02", "12"}


def test_joint_map_cmu_asf_names() -> None:
    """The CMU conversion that keeps the ASF bone names (LeftHip/LeftKnee/LeftAnkle, a
    LeftCollar clavicle before LeftShoulder, lhand at the wrist) maps onto the limbs."""
    names = ("Hips LHipJoint LeftHip LeftKnee LeftAnkle LeftToe RHipJoint RightHip RightKnee "
             "RightAnkle RightToe lowerback Chest Chest2 lowerneck Neck Head LeftCollar "
             "LeftShoulder LeftElbow LeftWrist lhand LFingers RightCollar RightShoulder "
             "RightElbow RightWrist rhand RFingers").split()  # fmt: skip
    m = {k: names[v] for k, v in B.joint_map(names).items()}
    assert m["l_shoulder"] == "LeftShoulder" and m["r_elbow"] == "RightElbow"
    assert m["l_hip"] == "LeftHip" and m["r_knee"] == "RightKnee" and m["l_ankle"] == "LeftAnkle"
    assert m["r_wrist"] in {"rhand", "RightWrist"} and m["neck"] == "Neck"


def test_cmu_style_label_table_names_one_known_value_per_trial() -> None:
    """datasets/real_walks/cmu_style_labels.csv (for users with the CMU files): every row
    reads as exactly one gaitsearch value, and keeps CMU's own description."""
    from gaitsearch.model.attributes import ATTRIBUTES

    table = B.read_label_table(ROOT / "datasets" / "real_walks" / "cmu_style_labels.csv")
    assert len(table) >= 60
    subjects = set()
    for name, labels in table.items():
        attrs = B.map_labels(labels)
        named = {k: v for k, v in attrs.items() if k != "bvh"}
        assert len(named) == 1, (name, attrs)
        ((group, value),) = named.items()
        assert value in ATTRIBUTES[group], (name, group, value)
        assert labels.get("cmu"), name
        subjects.add(name.split("_")[0])
    assert len(subjects) >= 10


def test_a_calibration_pose_at_the_start_of_a_take_is_dropped(tmp_path: Path) -> None:
    # Motion-capture takes (CMU's) often open on a T-pose blended into the walk within a few
    # frames; those frames jump faster than a body moves and must not reach the windows.
    plain = walk_bvh()
    head, motion = plain.split("Frame Time: 0.016667\n")
    first = motion.splitlines()[0].split()
    opening = []
    for z in (-90.0, -60.0, -30.0):  # the pose 30 cm apart per 1/60 s: 10 statures/s
        row = ["0.0", "95.0", f"{z}", *["0.0"] * (len(first) - 3)]
        opening.append(" ".join(row))
    prefixed = (
        head.replace("Frames: 240", "Frames: 243")
        + "Frame Time: 0.016667\n"
        + "\n".join(opening)
        + "\n"
        + motion
    )
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    report, meta, arrays = _import(tmp_path / "a", {"w.bvh": prefixed}, window=48, stride=16)
    base, base_meta, base_arrays = _import(tmp_path / "b", {"w.bvh": plain}, window=48, stride=16)
    assert report.opening_frames == 3 and base.opening_frames == 0
    assert [m["id"] for m in meta] == [m["id"] for m in base_meta]
    for key, arr in arrays.items():
        np.testing.assert_array_equal(arr, base_arrays[key])
