import json

import numpy as np
import pytest
from gaitsearch.model.gallery import (
    GalleryError,
    GalleryReport,
    iter_gallery,
    scan_gallery,
)
from gaitsearch.model.skeleton import (
    SkeletonError,
    coco17_to_openpose18,
    read_openpose_json_frames,
    validate_sequence,
    y_points_down,
)


def test_validate_rejects_bad_arrays():
    good = np.random.rand(10, 18, 3).astype(np.float32)
    assert validate_sequence(good).dtype == np.float32
    with pytest.raises(SkeletonError, match="wrong shape"):
        validate_sequence(np.zeros((10, 17, 3)), "a.npy")
    with pytest.raises(SkeletonError, match="too short"):
        validate_sequence(good[:3], "b.npy")
    bad = good.copy()
    bad[2, 3, 0] = np.nan
    with pytest.raises(SkeletonError, match="b.npy: contains NaN"):
        validate_sequence(bad, "b.npy")


def test_coco_conversion_builds_neck_from_shoulders():
    coco = np.zeros((9, 17, 3), dtype=np.float32)
    coco[:, 5] = [10, 20, 1]  # left shoulder
    coco[:, 6] = [30, 20, 0.5]  # right shoulder
    op = coco17_to_openpose18(coco)
    assert op.shape == (9, 18, 3)
    assert np.allclose(op[:, 1], [20, 20, 0.5])
    assert np.allclose(op[:, 2], [30, 20, 0.5])  # r_shoulder
    assert np.allclose(op[:, 5], [10, 20, 1])  # l_shoulder


def test_openpose_json_frames(tmp_path):
    paths = []
    for i in range(9):
        p = tmp_path / f"f{i:03d}_keypoints.json"
        people = [] if i == 4 else [{"pose_keypoints_2d": list(np.arange(54.0) / 54)}]
        p.write_text(json.dumps({"people": people}))
        paths.append(p)
    seq = read_openpose_json_frames(paths)
    assert seq.shape == (9, 18, 3)
    assert (seq[4] == 0).all()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"people": [{"pose_keypoints_2d": [1, 2, 3]}]}))
    with pytest.raises(SkeletonError, match="bad.json"):
        read_openpose_json_frames([bad])


def test_y_orientation_detection(random_gallery):
    _, arr = next(iter_gallery(random_gallery))
    assert y_points_down(arr)
    flipped = arr.copy()
    flipped[..., 1] *= -1
    assert not y_points_down(flipped)


def test_gallery_problems_are_reported_per_file(random_gallery):
    np.save(random_gallery / "sequences" / "orphan.npy", np.zeros((10, 18, 3), np.float32))
    np.save(random_gallery / "sequences" / "seq0003.npy", np.zeros((10, 17, 3), np.float32))
    with (random_gallery / "metadata.jsonl").open("a") as fh:
        fh.write('{"id": "ghost", "fps": 25}\n{"id": "seq0001"}\nnot json\n')
    before = sorted(p.name for p in random_gallery.rglob("*"))
    report = GalleryReport()
    items = list(iter_gallery(random_gallery, report=report))
    assert len(items) == 19 and report.ok == 19
    text = "\n".join(report.problems)
    assert "orphan" in text and "unknown id" in text
    assert "ghost" in text and "no sequence file" in text
    assert "duplicate id 'seq0001'" in text
    assert "not valid JSON" in text
    assert "seq0003.npy: wrong shape" in text
    assert sorted(p.name for p in random_gallery.rglob("*")) == before  # input untouched
    with pytest.raises(GalleryError):
        scan_gallery(random_gallery, strict=True)
