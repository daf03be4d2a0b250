"""The synthetic gallery: format, determinism, queries, attribute sampling, CLI."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from gaitsearch.model.attributes import ATTRIBUTES, check_attributes
from gaitsearch.model.gallery import iter_gallery, read_metadata
from gaitsearch.model.synth import build_queries, sample_attributes, synthesize_gallery
from gaitsearch.service.cli import app
from PIL import Image
from typer.testing import CliRunner


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("synth") / "g"
    summary = synthesize_gallery(root, 120, seed=7)
    return root, summary


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_writes_valid_sequences_and_metadata(gallery: tuple[Path, dict]) -> None:
    root, summary = gallery
    assert summary["count"] == 120
    records = read_metadata(root, strict=True)
    assert len(records) == 120
    assert [r.id for r in records] == [f"syn-{i:06d}" for i in range(120)]
    n = 0
    for record, seq in iter_gallery(root, strict=True):
        n += 1
        assert seq.dtype == np.float32 and seq.shape[1:] == (18, 3)
        assert 60 <= seq.shape[0] <= 120
        assert record.fps in (25.0, 30.0) and record.source == "synthetic"
        conf = seq[..., 2]
        assert 0.5 < (conf > 0).mean() <= 1.0  # most joints detected, not all
        assert ((seq[..., :2] == 0).all(-1) == (conf == 0)).all()  # missing = (0, 0, 0)
        # y grows downwards: the head is above the ankles in the image.
        seen = (conf[:, [0, 1]] > 0).all(1) & (conf[:, [10, 13]] > 0).all(1)
        assert (seq[seen][:, [0, 1], 1].mean() < seq[seen][:, [10, 13], 1].mean()).all()
        motion = {g: record.attributes[g] for g in ATTRIBUTES}
        check_attributes(motion)
        assert 3 <= len(record.descriptions or []) <= 6
        assert record.description == record.descriptions[0]
    assert n == 120


def test_same_seed_same_bytes_other_seed_differs(
    gallery: tuple[Path, dict], tmp_path: Path
) -> None:
    root, _ = gallery
    again = tmp_path / "again"
    synthesize_gallery(again, 120, seed=7)
    assert _digest(again) == _digest(root)
    other = tmp_path / "other"
    synthesize_gallery(other, 120, seed=8)
    a, b = _digest(root), _digest(other)
    assert a["metadata.jsonl"] != b["metadata.jsonl"]
    assert a["sequences/syn-000000.npy"] != b["sequences/syn-000000.npy"]


def test_worker_processes_write_the_same_bytes(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    seen: list[int] = []
    synthesize_gallery(one, 300, seed=4, workers=1, on_progress=seen.append)  # 2 chunks
    assert seen == [256, 300]  # sequences written so far
    synthesize_gallery(two, 300, seed=4, workers=2)
    assert _digest(one) == _digest(two)


def test_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    from gaitsearch.model.gallery import GalleryError

    (tmp_path / "x.txt").write_text("keep")
    with pytest.raises(GalleryError, match="not an empty directory"):
        synthesize_gallery(tmp_path, 3, seed=0)
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_queries_list_every_relevant_id(gallery: tuple[Path, dict]) -> None:
    root, summary = gallery
    records = {r.id: r.attributes for r in read_metadata(root)}
    queries = [json.loads(line) for line in (root / "queries.jsonl").open()]
    assert len(queries) == summary["queries"] >= 20
    assert len({q["query"] for q in queries}) == len(queries)
    sizes = Counter(len(q["attributes"]) for q in queries)
    assert set(sizes) <= {1, 2, 3} and len(sizes) >= 2
    for q in queries:
        predicate = q["attributes"]
        expected = sorted(
            i for i, a in records.items() if all(a[g] == v for g, v in predicate.items())
        )
        assert q["relevant"] == expected and expected


def test_build_queries_skips_predicates_without_matches() -> None:
    attrs = {"a": {g: v[0] for g, v in ATTRIBUTES.items()}}
    queries = build_queries(attrs, seed=0, n_queries=5)
    for q in queries:
        assert q["relevant"] == ["a"]


def test_attribute_sampling_has_plausible_correlations() -> None:
    rng = np.random.default_rng(0)
    sets = [sample_attributes(rng) for _ in range(4000)]
    heels = [a for a in sets if a["footwear"] == "heels"]
    cane = [a for a in sets if a["impairment"] == "cane"]
    running = [a for a in sets if a["pace"] == "running"]
    assert len(heels) > 200 and len(cane) > 100 and len(running) > 300
    assert np.mean([a["gender"] == "female" for a in heels]) > 0.9
    assert np.mean([a["age"] in ("young", "adult") for a in heels]) > 0.85
    assert np.mean([a["age"] == "elderly" for a in cane]) > 0.7
    assert np.mean([a["carrying"] == "suitcase" for a in running]) < 0.03
    assert not any(a["impairment"] != "none" for a in running)
    # Every value of every group occurs.
    for group, values in ATTRIBUTES.items():
        assert {a[group] for a in sets} == set(values), group


def test_synth_cli_writes_gallery_and_preview(tmp_path: Path) -> None:
    out, png = tmp_path / "g", tmp_path / "sheet.png"
    result = CliRunner().invoke(
        app, ["synth", "--out", str(out), "--count", "15", "--seed", "2", "--preview", str(png)]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["count"] == 15 and summary["queries"] > 0
    assert len(list((out / "sequences").glob("*.npy"))) == 15
    with Image.open(png) as img:
        assert img.width >= 600 and img.height >= 12 * 100


def test_synth_cli_refuses_non_empty_out(tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    result = CliRunner().invoke(app, ["synth", "--out", str(out), "--count", "3"])
    assert result.exit_code == 2
    assert "not an empty directory" in result.output and "Traceback" not in result.output
    assert (out / "keep.txt").read_text() == "precious"
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_synth_cli_rejects_bad_arguments_without_traceback(tmp_path: Path) -> None:
    runner = CliRunner()
    for args in (["--seed", "-1"], ["--count", "0"], ["--preview", str(tmp_path / "x.jpg")]):
        result = runner.invoke(app, ["synth", "--out", str(tmp_path / "g"), *args])
        assert result.exit_code == 2, args
        assert "Traceback" not in result.output
    assert not (tmp_path / "g").exists()
    with pytest.raises(ValueError, match="seed"):
        synthesize_gallery(tmp_path / "h", 3, seed=-5)
    assert not (tmp_path / "h").exists()


def test_describe_cli_rewrites_and_reports_bad_dirs(tmp_path: Path) -> None:
    out = tmp_path / "g"
    synthesize_gallery(out, 10, seed=1)
    runner = CliRunner()
    result = runner.invoke(app, ["describe", str(out), "--per-sequence", "2", "--seed", "5"])
    assert result.exit_code == 0, result.output
    assert all(len(r.descriptions or []) == 2 for r in read_metadata(out))
    missing = runner.invoke(app, ["describe", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "error:" in missing.output
    assert "Traceback" not in missing.output
    unconfigured = runner.invoke(
        app, ["describe", str(out), "--llm"], env={"GAITSEARCH_LLM_BASE_URL": ""}
    )
    assert unconfigured.exit_code == 2 and "GAITSEARCH_LLM_BASE_URL" in unconfigured.output
