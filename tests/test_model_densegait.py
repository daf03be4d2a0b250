"""`gaitsearch import densegait` for both layouts, on small fixtures made here."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import walking_like
from gaitsearch.model.densegait import DenseGaitError, import_tracklets
from gaitsearch.model.gallery import iter_gallery, read_metadata
from gaitsearch.model.skeleton import y_points_down
from gaitsearch.service.cli import app
from typer.testing import CliRunner


def _tracklets(root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(3)
    root.mkdir()
    arrays = {}
    for i in range(3):
        arr = walking_like(rng, 30 + i)
        if i == 1:
            arr[..., 1] = -arr[..., 1]  # a copy stored with y pointing up
        np.save(root / f"t{i}.npy", arr)
        arrays[f"t{i}"] = arr
    np.save(root / "bad.npy", np.zeros((5, 18, 3), np.float32))  # too short
    return root, arrays


def test_tracklets_with_csv_table(tmp_path: Path) -> None:
    tracks, arrays = _tracklets(tmp_path / "tracks")
    table = tmp_path / "attrs.csv"
    with table.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "fps", "description", "male", "female", "senior", "backpack", "jacket"])
        w.writerow(["t0", "30", "", "0.9", "0.1", "0.8", "0.7", "0.6"])
        w.writerow(["t1", "", "A woman with a bag.", "0.2", "0.7", "0.1", "0.0", "0.0"])
        w.writerow(["t2", "", "", "0.4", "0.3", "0.2", "0.1", "0.9"])
        w.writerow(["bad", "", "", "0.4", "0.3", "0.2", "0.1", "0.9"])
    report = import_tracklets(tracks, table, tmp_path / "out", fps=25.0)
    assert report.ok == 3 and report.skipped == 1 and "bad.npy" in report.problems[0]
    recs = {r.id: r for r in read_metadata(tmp_path / "out")}
    t0 = recs["t0"]
    assert t0.fps == 30 and t0.source == "densegait"
    assert t0.attributes["gender"] == "male" and t0.attributes["age"] == "elderly"
    assert t0.attributes["carrying"] == "backpack"
    assert t0.attributes["densegait"]["jacket"] == 0.6  # raw labels kept
    assert "man" in t0.description and "backpack" in t0.description and "jacket" in t0.description
    assert recs["t1"].description == "A woman with a bag."  # existing caption kept
    assert recs["t1"].attributes["gender"] == "female" and recs["t1"].fps == 25
    assert "gender" not in recs["t2"].attributes  # nothing above threshold
    arrays_out = {r.id: a for r, a in iter_gallery(tmp_path / "out", strict=True)}
    assert all(y_points_down(a) for a in arrays_out.values())
    np.testing.assert_allclose(arrays_out["t1"][..., 1], arrays["t1"][..., 1] * -1)
    np.testing.assert_allclose(arrays_out["t0"], arrays["t0"])


def test_tracklets_with_json_table_and_errors(tmp_path: Path) -> None:
    tracks, _ = _tracklets(tmp_path / "tracks")
    table = tmp_path / "attrs.json"
    table.write_text(json.dumps({"t0": {"female": 1.0}, "t1": {"side": 0.9}}))
    report = import_tracklets(tracks, table, tmp_path / "out")
    assert report.ok == 2  # t2 has no row, bad.npy has no row
    recs = {r.id: r for r in read_metadata(tmp_path / "out")}
    assert recs["t1"].attributes["view"] == "side"
    table.write_text(json.dumps({"t0": {"female": 7}}))
    report = import_tracklets(tracks, table, tmp_path / "out2")
    assert report.ok == 0 and any("outside [0, 1]" in p for p in report.problems)
    with pytest.raises(DenseGaitError, match="no row"):
        import_tracklets(tracks, table, tmp_path / "out3", strict=True)


def test_joblib_records(tmp_path: Path) -> None:
    import joblib

    rng = np.random.default_rng(4)
    up = walking_like(rng, 40)
    up[..., 1] *= -1
    records = [
        {"joints": walking_like(rng, 40), "text": "A senior man walks slowly.",
         "feature_id": "male,senior,side,backpack,sneakers"},
        {"joints": up, "text": "", "feature_id": "female,young-adult,front,dress,calling"},
        {"joints": np.zeros((3, 18, 3)), "text": "x", "feature_id": "male"},
        "not a record",
    ]  # fmt: skip
    path = tmp_path / "train.joblib"
    joblib.dump(records, path)
    res = CliRunner().invoke(
        app, ["import", "densegait", "--joblib", str(path), "--out", str(tmp_path / "g")]
    )
    assert res.exit_code == 0, res.output
    assert "runs any code" in res.output  # the pickle warning
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["imported"] == 2 and summary["skipped"] == 2
    pairs = list(iter_gallery(tmp_path / "g", strict=True))
    first, second = pairs[0][0], pairs[1][0]
    assert first.description == "A senior man walks slowly."
    assert first.attributes["age"] == "elderly" and first.attributes["footwear"] == "flat"
    assert second.attributes["carrying"] == "phone_call" and second.attributes["view"] == "front"
    assert "woman" in second.description and "phone" in second.description
    assert y_points_down(pairs[1][1])


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["import", "densegait", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "--tracklets" in res.output
    bad = tmp_path / "x.joblib"
    bad.write_bytes(b"garbage")
    res = runner.invoke(
        app, ["import", "densegait", "--joblib", str(bad), "--out", str(tmp_path / "o")]
    )  # noqa: E501
    assert res.exit_code == 2 and "x.joblib" in res.output and "Traceback" not in res.output
    assert "--joblib" in runner.invoke(app, ["import", "densegait", "--help"]).output
