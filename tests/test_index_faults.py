"""Faults: a killed build, damaged files, another checkpoint, concurrent writers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from gaitsearch.index import publish as publish_module
from gaitsearch.index import versions
from gaitsearch.index.build import IndexBuildError, build_index
from gaitsearch.index.derive import add_to_index
from gaitsearch.index.loaded_index import IndexLoadError, current_version, load_index
from gaitsearch.index.maintenance import activate_version
from gaitsearch.index.manifest import FileChecksum
from test_index_build import make_gallery


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_gallery(tmp_path_factory.mktemp("g") / "gallery", 120)


@pytest.fixture
def two_versions(gallery, tiny_checkpoint, tmp_path) -> Path:
    idx = tmp_path / "idx"
    build_index(gallery, idx, tiny_checkpoint, progress=False)
    build_index(gallery, idx, tiny_checkpoint, progress=False)
    activate_version(idx, "v0001")
    return idx


def _answers(idx: Path) -> None:
    live = load_index(idx)
    hits = live.search(live.vector("g00003")[None], 5)[0]
    assert hits[0].id == "g00003"
    live.close()


def test_kill_9_mid_build_leaves_current_on_old_version(gallery, tiny_checkpoint, tmp_path):
    idx = tmp_path / "idx"
    build_index(gallery, idx, tiny_checkpoint, progress=False)
    env = {**os.environ, "GAITSEARCH_TEST_BATCH_DELAY": "0.4"}
    cmd = [
        sys.executable, "-m", "gaitsearch.service.cli", "index", "build",
        "--data", str(gallery), "--index-dir", str(idx),
        "--checkpoint", str(tiny_checkpoint), "--batch-size", "8",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    partial = idx / "versions" / "v0002.partial"
    deadline = time.monotonic() + 60
    while not (partial / "metadata.sqlite").exists():
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline, "build never started"
        time.sleep(0.05)
    time.sleep(1.0)  # a few batches into the embedding (15 batches x 0.4 s in all)
    assert proc.poll() is None, "build finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    assert current_version(idx) == "v0001"
    assert partial.is_dir() and not (idx / "versions" / "v0002").exists()
    _answers(idx)
    # The kernel dropped the dead build's lock; the next build cleans up and publishes.
    result = build_index(gallery, idx, tiny_checkpoint, progress=False)
    assert result.version == "v0002" and current_version(idx) == "v0002"
    assert not list((idx / "versions").glob("*.partial"))
    assert load_index(idx).count == 120


def test_next_build_removes_partial_versions(gallery, tiny_checkpoint, two_versions):
    stale = two_versions / "versions" / "v0007.partial"
    stale.mkdir()
    (stale / "vectors.faiss").write_bytes(b"half")
    build_index(gallery, two_versions, tiny_checkpoint, progress=False)
    assert not stale.exists()
    assert current_version(two_versions) == "v0003"


def test_truncated_vectors_refused_and_never_activated(two_versions):
    target = two_versions / "versions" / "v0002" / "vectors.faiss"
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexLoadError, match=r"vectors\.faiss.*truncated"):
        load_index(two_versions, "v0002")
    with pytest.raises(IndexLoadError, match=r"vectors\.faiss"):
        activate_version(two_versions, "v0002")
    assert current_version(two_versions) == "v0001"
    _answers(two_versions)


def test_manifest_checksum_mismatch_refused(two_versions):
    manifest_path = two_versions / "versions" / "v0002" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["metadata.sqlite"]["sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexLoadError, match=r"metadata\.sqlite: sha256 does not match"):
        load_index(two_versions, "v0002")
    with pytest.raises(IndexLoadError):
        activate_version(two_versions, "v0002")
    assert current_version(two_versions) == "v0001"
    manifest_path.write_text("{not json")
    with pytest.raises(IndexLoadError, match=r"manifest\.json: not a valid index manifest"):
        load_index(two_versions, "v0002")


def test_current_pointing_at_damaged_version_fails_clearly(two_versions):
    (two_versions / "versions" / "v0001" / "metadata.sqlite").write_bytes(b"garbage")
    with pytest.raises(IndexLoadError, match=r"v0001/metadata\.sqlite"):
        load_index(two_versions)


def test_build_whose_files_fail_verification_is_not_published(
    gallery, tiny_checkpoint, two_versions, monkeypatch
):
    def wrong_checksum(path: Path) -> FileChecksum:
        return FileChecksum(sha256="f" * 64, bytes=path.stat().st_size)

    monkeypatch.setattr(publish_module, "file_checksum", wrong_checksum)
    with pytest.raises(IndexLoadError, match="sha256"):
        build_index(gallery, two_versions, tiny_checkpoint, progress=False)
    assert current_version(two_versions) == "v0001"
    assert versions.list_versions(two_versions) == ["v0001", "v0002"]
    assert not list((two_versions / "versions").glob("*.partial"))


def test_index_from_checkpoint_a_refused_for_checkpoint_b(
    gallery, tiny_checkpoint, make_tiny_checkpoint, text_encoder, tmp_path
):
    from gaitsearch.model.checkpoint import load_checkpoint

    ckpt_b = make_tiny_checkpoint(tmp_path / "ckpt_b")
    a, b = load_checkpoint(tiny_checkpoint), load_checkpoint(ckpt_b)
    assert a.fingerprint != b.fingerprint

    idx = tmp_path / "idx"
    build_index(gallery, idx, tiny_checkpoint, progress=False)
    live = load_index(idx)
    live.check_compatible(a.fingerprint, text_encoder.fingerprint)  # same: accepted
    with pytest.raises(IndexLoadError, match=f"built with checkpoint {a.fingerprint}"):
        live.check_compatible(b.fingerprint, text_encoder.fingerprint)
    with pytest.raises(IndexLoadError, match="text encoder"):
        live.check_compatible(a.fingerprint, "0123456789abcdef")
    live.close()
    extra = make_gallery(tmp_path / "extra", 5, start=500)
    with pytest.raises(IndexBuildError, match="checkpoint"):
        add_to_index(extra, idx, ckpt_b, progress=False)
    assert current_version(idx) == "v0001"


def test_lock_prevents_concurrent_publish(gallery, tiny_checkpoint, two_versions):
    with versions.write_lock(two_versions):
        with pytest.raises(versions.IndexLockedError, match=f"pid {os.getpid()}"):
            build_index(gallery, two_versions, tiny_checkpoint, progress=False)
        with pytest.raises(versions.IndexLockedError):
            activate_version(two_versions, "v0002")
    assert current_version(two_versions) == "v0001"
    assert versions.list_versions(two_versions) == ["v0001", "v0002"]
    assert not list((two_versions / "versions").glob("*.partial"))
    activate_version(two_versions, "v0002")  # released afterwards
    assert current_version(two_versions) == "v0002"


def test_lock_is_held_across_processes(tmp_path):
    idx = tmp_path / "idx"
    code = (
        "import sys, time; from gaitsearch.index.versions import write_lock\n"
        "with write_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(30)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(idx)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(versions.IndexLockedError, match=f"pid {proc.pid}"):
            with versions.write_lock(idx):
                pass
    finally:
        proc.kill()
        proc.wait()
    with versions.write_lock(idx):  # a killed holder's lock is gone
        pass


def test_set_current_is_atomic_replace(tmp_path):
    idx = tmp_path / "idx"
    (idx / "versions" / "v0001").mkdir(parents=True)
    versions.set_current(idx, "v0001")
    assert (idx / "CURRENT").read_text() == "v0001\n"
    assert not list(idx.glob("CURRENT.tmp*"))
    with pytest.raises(FileNotFoundError):
        versions.set_current(idx, "v0002")
    assert current_version(idx) == "v0001"
    assert np.array_equal(versions.list_versions(idx), ["v0001"])
