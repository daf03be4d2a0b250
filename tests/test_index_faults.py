"""Faults: a killed build, damaged files, another checkpoint, concurrent writers."""

from __future__ import annotations

import json
import os
import shutil
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


# --- Issue R: disk full during a build, gc over symbolic links ---------------------------------
def _files_of(idx: Path, version: str) -> dict[str, str]:
    from gaitsearch.index.manifest import file_checksum

    vdir = idx / "versions" / version
    return {p.name: file_checksum(p).sha256 for p in sorted(vdir.iterdir())}


def _cli_error_line(output: str) -> str:
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    return errors[0]


def _assert_untouched(idx: Path, before: dict[str, str]) -> None:
    assert current_version(idx) == "v0001"
    assert sorted(p.name for p in (idx / "versions").iterdir()) == ["v0001"]
    assert _files_of(idx, "v0001") == before
    _answers(idx)


@pytest.mark.skipif(not Path("/dev/full").is_char_device(), reason="needs Linux /dev/full")
@pytest.mark.parametrize("full_file", ["metadata.sqlite", "vectors.faiss", "manifest.json.tmp"])
def test_disk_full_during_build_is_one_line_and_the_live_version_stays(
    gallery, tiny_checkpoint, tmp_path, monkeypatch, full_file
):
    """A real ENOSPC from the kernel, without filling a disk: the new version's directory is
    created as usual, and one of the files the build writes is planted there first as a
    symbolic link to ``/dev/full`` (every write(2) to it fails with ENOSPC). So SQLite's own C
    writes (SQLITE_FULL), FAISS' writer and the manifest's Python writes each meet a full disk.
    The CLI answers one ``error:`` line naming the file and "no space left on device"; the
    partial version is removed (the link, never ``/dev/full``), ``CURRENT`` and v0001 are
    untouched."""
    from gaitsearch.service.cli import app
    from typer.testing import CliRunner

    idx = tmp_path / "idx"
    build_index(gallery, idx, tiny_checkpoint, progress=False)
    before = _files_of(idx, "v0001")
    real_staging = versions.staging_path

    def staging_with_a_full_file(index_dir: Path, version: str) -> Path:
        path = real_staging(index_dir, version)
        (path / full_file).symlink_to("/dev/full")
        return path

    monkeypatch.setattr(versions, "staging_path", staging_with_a_full_file)
    args = ["index", "build", "--data", str(gallery), "--index-dir", str(idx)]
    result = CliRunner().invoke(app, [*args, "--checkpoint", str(tiny_checkpoint)])
    assert result.exit_code == 2, result.output
    line = _cli_error_line(result.output)
    assert f"v0002.partial/{full_file.removesuffix('.tmp')}" in line, line
    assert "no space left on device" in line and "CURRENT still names v0001" in line, line
    assert Path("/dev/full").is_char_device()
    _assert_untouched(idx, before)


@pytest.fixture(scope="module")
def wordy_gallery(gallery: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``gallery`` with long descriptions, so its metadata.sqlite outgrows vectors.faiss."""
    root = tmp_path_factory.mktemp("wordy") / "gallery"
    shutil.copytree(gallery, root)
    lines = []
    for line in (gallery / "metadata.jsonl").read_text().splitlines():
        record = json.loads(line)
        record["description"] = " and ".join([record["description"]] * 40)
        lines.append(json.dumps(record))
    (root / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("crossing", ["metadata.sqlite at creation", "vectors.faiss",
                                      "metadata.sqlite at commit"])  # fmt: skip
def test_build_past_the_file_size_limit_is_one_line_and_the_live_version_stays(
    wordy_gallery, tiny_checkpoint, tmp_path, crossing
):
    """Writes refused by the kernel in a real CLI subprocess: ``RLIMIT_FSIZE`` (with SIGXFSZ
    ignored) makes every write(2) past the limit fail with EFBIG, "file too large", in SQLite's
    and FAISS' C code as in Python's. The limit is set from the sizes of v0001's files so the
    failing write is the named one. One ``error:`` line naming the file (SQLite says only
    "disk I/O error" for EFBIG), no traceback, no partial or new version, v0001 intact."""
    import resource

    idx = tmp_path / "idx"
    build_index(wordy_gallery, idx, tiny_checkpoint, progress=False)
    before = _files_of(idx, "v0001")
    sizes = {p.name: p.stat().st_size for p in (idx / "versions" / "v0001").iterdir()}
    # The build writes the SQLite schema, then vectors.faiss, then commits the metadata.
    assert sizes["vectors.faiss"] < sizes["metadata.sqlite"], sizes
    limit = {
        "metadata.sqlite at creation": 4096,
        "vectors.faiss": sizes["vectors.faiss"] - 1,
        "metadata.sqlite at commit": sizes["metadata.sqlite"] - 1,
    }[crossing]

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    cmd = [
        sys.executable, "-m", "gaitsearch.service.cli", "index", "build",
        "--data", str(wordy_gallery), "--index-dir", str(idx),
        "--checkpoint", str(tiny_checkpoint),
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, preexec_fn=limit_file_size, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2, proc.stderr
    line = _cli_error_line(proc.stderr)
    name = crossing.split()[0]
    assert f"v0002.partial/{name}:" in line, line
    reason = "disk I/O error" if name == "metadata.sqlite" else "file too large"
    assert reason in line and "CURRENT still names v0001" in line, line
    _assert_untouched(idx, before)


@pytest.fixture
def fabricated_index(tmp_path) -> tuple[Path, Path]:
    """Versions v0001-v0003 (v0003 live) as plain directories (gc reads no contents), and an
    ``outside`` directory of precious files beside the index directory."""
    idx = tmp_path / "idx"
    for name in ("v0001", "v0002", "v0003"):
        (idx / "versions" / name).mkdir(parents=True)
        (idx / "versions" / name / "vectors.faiss").write_bytes(b"x" * 10)
    versions.set_current(idx, "v0003")
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "precious.txt").write_text("keep me")
    (outside / "dir" / "also.txt").write_text("keep me too")
    return idx, outside


@pytest.mark.parametrize(
    "layout",
    ["version-is-a-link", "version-holds-links", "partial-is-a-link", "versions-is-a-link"],
)
def test_gc_never_deletes_through_a_symbolic_link(fabricated_index, tmp_path, layout):
    from gaitsearch.service.cli import app
    from typer.testing import CliRunner

    idx, outside = fabricated_index
    root = idx / "versions"
    if layout == "version-is-a-link":
        shutil.move(root / "v0001", outside / "v0001")
        (root / "v0001").symlink_to(outside / "v0001")
        expect_skipped, expect_removed = ["v0001"], ["v0002"]
    elif layout == "version-holds-links":
        (root / "v0001" / "metadata.sqlite").symlink_to(outside / "precious.txt")
        (root / "v0001" / "sub").symlink_to(outside / "dir")
        expect_skipped, expect_removed = ["v0001"], ["v0002"]
    elif layout == "partial-is-a-link":
        (root / "v0009.partial").symlink_to(outside / "dir")
        expect_skipped, expect_removed = ["v0009.partial"], ["v0001", "v0002"]
    else:  # every version lives outside the index directory, through the link
        shutil.move(root, outside / "versions")
        root.symlink_to(outside / "versions")
        expect_skipped, expect_removed = ["v0001", "v0002"], []
    keep_files = sorted(p for p in outside.rglob("*"))
    result = CliRunner().invoke(app, ["index", "gc", "--keep", "1", "--index-dir", str(idx)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    skipped = [line for line in result.output.splitlines() if line.startswith("skipped:")]
    assert [line.split(":")[1].strip() for line in skipped] == expect_skipped, result.output
    assert all("symbolic link" in line for line in skipped), skipped
    removed = ", ".join(expect_removed)
    assert f"removed {len(expect_removed)} version(s)" in result.output, result.output
    assert removed in result.output
    # Nothing outside the index directory changed; the links themselves are still there.
    assert sorted(p for p in outside.rglob("*")) == keep_files
    assert (outside / "precious.txt").read_text() == "keep me"
    assert (outside / "dir" / "also.txt").read_text() == "keep me too"
    assert current_version(idx) == "v0003" and (root / "v0003").is_dir()
    for name in expect_skipped:
        assert (root / name).exists()
    # The fd-based rmtree (Linux) unlinks a link met while deleting instead of following it,
    # so a link swapped in after gc's check cannot redirect the deletion either.
    assert shutil.rmtree.avoids_symlink_attacks
