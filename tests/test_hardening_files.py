"""Issue R, files and CLI: damaged gallery files, metadata lines, manifests and CURRENT give
one line ``error: <file>[:<line>]: <problem>`` (or a ``skipped:`` line), never a traceback."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from gaitsearch.service.cli import app
from service_helpers import write_gallery
from typer.testing import CliRunner

runner = CliRunner()


def _damage_header(path: Path, shape: tuple[int, ...], descr: str = "<f4") -> None:
    from numpy.lib import format as npy

    with path.open("wb") as fh:
        npy.write_array_header_1_0(fh, {"descr": descr, "fortran_order": False, "shape": shape})
        fh.write(b"\0" * 64)


@pytest.fixture()
def damaged_gallery(tmp_path) -> tuple[Path, dict[str, str]]:
    """A 24-walk gallery where eight entries are damaged in a different way each; maps the
    damaged id (or metadata line) to a word its problem line must contain."""
    root = write_gallery(tmp_path / "gallery", count=24, seed=5)
    seq = root / "sequences"
    ids = sorted(p.stem for p in seq.glob("*.npy"))
    expect: dict[str, str] = {}
    (seq / f"{ids[0]}.npy").write_bytes(b"")
    expect[ids[0]] = "empty"
    _damage_header(seq / f"{ids[1]}.npy", (10**10, 18, 3))
    expect[ids[1]] = "frames"
    (seq / f"{ids[2]}.npy").unlink()
    os.mkfifo(seq / f"{ids[2]}.npy")  # would block the build forever if opened
    expect[ids[2]] = "regular file"
    walk = np.load(seq / f"{ids[3]}.npy")
    np.save(seq / f"{ids[3]}.npy", walk.astype(np.complex64))
    expect[ids[3]] = "complex"
    huge = walk.copy()
    huge[:, 4, :2] = 1e38
    np.save(seq / f"{ids[4]}.npy", huge)
    expect[ids[4]] = "coordinates"
    lines = (root / "metadata.jsonl").read_bytes().splitlines(keepends=True)
    lines.append(b'{"id": "caf\xe9", "fps": 25}\n')  # Latin-1, not UTF-8
    lines.append(b'{"id": "nested", "attributes": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n")
    lines.append(json.dumps({"id": ids[5] + "x\n", "fps": 25}).encode() + b"\n")
    (root / "metadata.jsonl").write_bytes(b"".join(lines))
    n = len(lines)
    expect[f"metadata.jsonl:{n - 2}"] = "UTF-8"
    expect[f"metadata.jsonl:{n - 1}"] = "nested"
    expect[f"metadata.jsonl:{n}"] = "id"
    return root, expect


def test_build_skips_every_damaged_file_with_one_line_and_indexes_the_rest(
    damaged_gallery, tiny_checkpoint, tmp_path
):
    root, expect = damaged_gallery
    index_dir = tmp_path / "index"
    args = ["index", "build", "--data", str(root), "--index-dir", str(index_dir)]
    result = runner.invoke(app, [*args, "--checkpoint", str(tiny_checkpoint)])
    out = result.output
    assert result.exit_code == 0, out
    assert "Traceback" not in out
    skipped = [line for line in out.splitlines() if line.startswith("skipped:")]
    for key, word in expect.items():
        lines = [line for line in skipped if f"{key}.npy:" in line or f"{key}:" in line]
        assert len(lines) == 1, (key, skipped)
        assert word in lines[0], lines[0]
    from gaitsearch.index.loaded_index import load_index

    index = load_index(index_dir)
    try:
        assert index.count == 24 - 5
        _, vectors = index.all_vectors()
        assert np.isfinite(vectors).all()
    finally:
        index.close()


@pytest.fixture()
def index_dir(tmp_path, tiny_checkpoint) -> Path:
    from gaitsearch.index.build import build_index

    gallery = write_gallery(tmp_path / "g", count=16, seed=2)
    build_index(gallery, tmp_path / "index", tiny_checkpoint, progress=False)
    return tmp_path / "index"


def _one_error_line(result, *words: str) -> None:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for word in words:
        assert word in errors[0], errors[0]


@pytest.mark.parametrize("damage", ["not-utf8", "directory"])
def test_index_list_and_serve_over_a_damaged_current_say_one_line(index_dir, damage):
    current = index_dir / "CURRENT"
    current.unlink()
    if damage == "directory":
        current.mkdir()
    else:
        current.write_bytes(b"\xff\xfe\n")
    _one_error_line(runner.invoke(app, ["index", "list", "--index-dir", str(index_dir)]), "CURRENT")
    serve = runner.invoke(app, ["serve", "--index-dir", str(index_dir), "--port", "1"])
    _one_error_line(serve, "CURRENT")


def test_a_deeply_nested_manifest_is_refused_with_one_line(index_dir):
    from gaitsearch.index.versions import current_version, version_path

    manifest = version_path(index_dir, current_version(index_dir)) / "manifest.json"
    manifest.write_text("[" * 100_000 + "]" * 100_000)
    listing = runner.invoke(app, ["index", "list", "--index-dir", str(index_dir)])
    assert listing.exit_code == 0 and "broken" in listing.output, listing.output
    activate = runner.invoke(app, ["index", "activate", "v0001", "--index-dir", str(index_dir)])
    _one_error_line(activate, "manifest.json", "nested")


def test_a_copied_version_is_not_served_under_the_wrong_name(index_dir):
    from gaitsearch.index.loaded_index import IndexLoadError, load_index

    shutil.copytree(index_dir / "versions" / "v0001", index_dir / "versions" / "v0007")
    with pytest.raises(IndexLoadError, match="says version 'v0001'"):
        load_index(index_dir, "v0007")


def test_ids_are_matched_in_full():
    from gaitsearch.model.gallery import SequenceRecord
    from pydantic import ValidationError

    SequenceRecord(id="walk-1.a")
    with pytest.raises(ValidationError):
        SequenceRecord(id="walk-1\n")


def test_a_non_finite_embedding_is_never_indexed(tmp_path, tiny_checkpoint, monkeypatch):
    from gaitsearch.index import build
    from gaitsearch.index.build import build_index
    from gaitsearch.index.loaded_index import load_index

    real = build.embed_local

    def one_nan(*args, **kwargs):
        for i, batch in enumerate(real(*args, **kwargs)):
            if i == 0:
                batch.vectors = batch.vectors.copy()
                batch.vectors[0] = np.nan
            yield batch

    monkeypatch.setattr(build, "embed_local", one_nan)
    gallery = write_gallery(tmp_path / "g", count=12, seed=4)
    result = build_index(gallery, tmp_path / "index", tiny_checkpoint, progress=False)
    assert any("not finite" in line for line in result.problems), result.problems
    index = load_index(tmp_path / "index")
    try:
        assert index.count == 11
        assert np.isfinite(index.all_vectors()[1]).all()
    finally:
        index.close()


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("n_heads", 3, "divisible by n_heads"),
        ("d_ff", 10**9, "d_ff"),
        ("d_model", 10**7, "d_model"),
    ],
)
def test_a_damaged_checkpoint_config_is_one_line_not_a_traceback(tmp_path, field, value, says):
    import json
    import shutil

    from gaitsearch.model.checkpoint import default_checkpoint_path
    from gaitsearch.service.cli import app
    from typer.testing import CliRunner

    copy = tmp_path / "ckpt"
    shutil.copytree(default_checkpoint_path(), copy)
    config = json.loads((copy / "config.json").read_text())
    config["encoder"][field] = value
    (copy / "config.json").write_text(json.dumps(config))
    npy = tmp_path / "walk.npy"
    from conftest import walking_like

    np.save(npy, walking_like(np.random.default_rng(0)))
    result = CliRunner().invoke(
        app, ["classify", str(npy), "--labels", "running,limping", "--checkpoint", str(copy)]
    )
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and "config.json" in lines[0] and says in lines[0]


def _flip_a_bit_in_the_weights(checkpoint: Path) -> Path:
    """Flip one bit in the last byte of ``model.safetensors`` (tensor data, not the header:
    the file still parses and its tensors still fit the config)."""
    weights = checkpoint / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x10
    weights.write_bytes(bytes(data))
    return weights


def test_a_flipped_bit_in_the_weights_is_refused_at_build_time(tiny_checkpoint, tmp_path):
    """Checkpoints carry the sha256 of their weights in config.json (save_checkpoint writes
    it); loading verifies it, so ``index build`` refuses a damaged file with one line naming
    it, and nothing is built."""
    import hashlib

    from gaitsearch.model.checkpoint import CheckpointError, load_checkpoint

    copy = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, copy)
    config = json.loads((copy / "config.json").read_text())
    digest = hashlib.sha256((copy / "model.safetensors").read_bytes()).hexdigest()
    assert config["weights_sha256"] == digest
    good = load_checkpoint(copy).fingerprint
    weights = _flip_a_bit_in_the_weights(copy)
    with pytest.raises(CheckpointError, match=r"model\.safetensors: sha256 .* does not match"):
        load_checkpoint(copy)
    gallery = write_gallery(tmp_path / "g", count=8, seed=6)
    index_dir = tmp_path / "index"
    args = ["index", "build", "--data", str(gallery), "--index-dir", str(index_dir)]
    result = runner.invoke(app, [*args, "--checkpoint", str(copy)])
    _one_error_line(result, str(weights), "sha256", "damaged")
    assert result.exit_code == 2
    assert not index_dir.exists()  # refused before anything was written
    # Undo the flip: the checksum (never part of the fingerprint) accepts it again.
    _flip_a_bit_in_the_weights(copy)
    assert load_checkpoint(copy).fingerprint == good


def test_a_checkpoint_saved_without_a_weights_checksum_still_loads(tiny_checkpoint, tmp_path):
    """Checkpoints saved before the checksum existed (the shipped one, until it is re-saved)
    load unverified, with the same fingerprint, so indexes built with them keep matching."""
    from gaitsearch.model.checkpoint import load_checkpoint

    copy = tmp_path / "old"
    shutil.copytree(tiny_checkpoint, copy)
    config = json.loads((copy / "config.json").read_text())
    del config["weights_sha256"]
    (copy / "config.json").write_text(json.dumps(config))
    assert load_checkpoint(copy).fingerprint == load_checkpoint(tiny_checkpoint).fingerprint
    shipped = json.loads(
        (Path(__file__).resolve().parents[1] / "model/checkpoints/default/config.json").read_text()
    )
    if "weights_sha256" not in shipped:
        load_checkpoint()  # the shipped checkpoint, saved before the checksum, still loads
