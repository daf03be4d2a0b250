"""Index builds: versions on disk, counts, search and filters, CLI, add/remove/activate/gc."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import walking_like
from gaitsearch.index.build import build_index
from gaitsearch.index.derive import add_to_index, remove_from_index
from gaitsearch.index.faiss_index import choose_kind
from gaitsearch.index.loaded_index import IndexLoadError, current_version, load_index
from gaitsearch.index.maintenance import activate_version, collect_garbage
from gaitsearch.model.gallery import GalleryWriter, SequenceRecord
from gaitsearch.service.cli import app
from typer.testing import CliRunner

VIEWS = ("front", "side", "back")


def make_gallery(root: Path, n: int, start: int = 0, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    with GalleryWriter(root) as writer:
        for i in range(start, start + n):
            view = VIEWS[i % 3]
            record = SequenceRecord(
                id=f"g{i:05d}",
                fps=25.0 if i % 4 else 30.0,
                source="cam1" if i % 2 else "cam2",
                attributes={"view": view, "pace": "brisk" if i % 5 == 0 else "normal"},
                description=f"a person walking {'briskly ' if i % 5 == 0 else ''}"
                f"seen from the {view}",
            )
            writer.add(record, walking_like(rng, 30 + i % 20))
    return root


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_gallery(tmp_path_factory.mktemp("g") / "gallery", 120)


def test_build_creates_version_files_and_current(gallery, tiny_checkpoint, tmp_path):
    idx = tmp_path / "idx"
    result = build_index(gallery, idx, tiny_checkpoint, batch_size=32, progress=False)
    vdir = idx / "versions" / result.version
    assert {p.name for p in vdir.iterdir()} == {"manifest.json", "vectors.faiss", "metadata.sqlite"}
    assert (idx / "CURRENT").read_text().strip() == result.version
    assert not list((idx / "versions").glob("*.partial"))
    manifest = json.loads((vdir / "manifest.json").read_text())
    assert manifest["count"] == 120 and result.count == 120 and result.skipped == 0
    assert manifest["kind"] == "flat"
    assert manifest["dim"] == 384
    assert set(manifest["files"]) == {"vectors.faiss", "metadata.sqlite"}
    assert manifest["text_encoder"]["name"] == "all-MiniLM-L6-v2"

    live = load_index(idx)
    assert live.version == result.version and live.count == 120
    assert {"view", "source", "fps", "pace"} <= live.filter_keys
    # A stored gallery vector finds itself first, with its metadata.
    vec = live.vector("g00007")
    hits = live.search(vec[None], 5)[0]
    assert hits[0].id == "g00007" and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[0].metadata["attributes"]["view"] == VIEWS[7 % 3]
    assert set(hits[0].metadata) == {"id", "fps", "source", "attributes", "description"}
    assert live.get("g00007")["path"].endswith("sequences/g00007.npy")
    assert live.load_keypoints("g00007").shape[1:] == (18, 3)
    assert live.get("nope") is None and live.load_keypoints("nope") is None
    live.close()


def test_filters_restrict_hits_and_unknown_key_is_refused(gallery, tiny_checkpoint, tmp_path):
    build_index(gallery, tmp_path / "idx", tiny_checkpoint, progress=False)
    live = load_index(tmp_path / "idx")
    q = live.vector("g00000")[None]
    side = live.search(q, 200, {"view": "side"})[0]
    assert len(side) == 40 and all(h.metadata["attributes"]["view"] == "side" for h in side)
    both = live.search(q, 200, {"view": ["side", "back"], "source": "cam1", "fps": "25"})[0]
    assert both and all(
        h.metadata["attributes"]["view"] in ("side", "back")
        and h.metadata["source"] == "cam1"
        and h.metadata["fps"] == 25.0
        for h in both
    )
    # Same ranking as unfiltered search restricted to matching rows.
    full = [h for h in live.search(q, 120)[0] if h.metadata["attributes"]["view"] == "side"]
    assert [h.id for h in side] == [h.id for h in full]
    assert live.search(q, 5, {"view": "upside-down"}) == [[]]
    with pytest.raises(ValueError, match="colour"):
        live.search(q, 5, {"colour": "red"})
    with pytest.raises(ValueError, match="shape"):
        live.search(np.zeros((1, 7), np.float32), 5)
    live.close()


@pytest.mark.parametrize("kind", ["hnsw", "ivfflat", "ivfsq8", "ivfpq"])
def test_approximate_kinds_record_measured_recall(gallery, tiny_checkpoint, tmp_path, kind):
    result = build_index(gallery, tmp_path / "idx", tiny_checkpoint, kind=kind, progress=False)
    recall = result.manifest.recall
    assert result.kind == kind and recall is not None
    assert recall.queries > 0 and recall.query_source == "descriptions"
    assert 0.0 < recall.recall_at_10 <= 1.0
    assert recall.meets_target == (recall.recall_at_10 >= 0.95)
    live = load_index(tmp_path / "idx")
    top = [h.id for h in live.search(live.vector("g00011")[None], 3)[0]]
    # Product quantisation is lossy: the query's own row need only be near the top.
    assert top[0] == "g00011" if kind != "ivfpq" else "g00011" in top
    rows, vecs = live.all_vectors()
    assert rows.tolist() == list(range(120)) and vecs.shape == (120, 384)
    assert np.allclose(live._index.reconstruct_n(0, 120), vecs)  # the service's exact baseline
    live.close()


def test_auto_kind_by_size():
    assert choose_kind(2_000, 384) == "flat"
    assert choose_kind(20_001, 384) == "ivfflat"
    assert choose_kind(217_000, 384) == "ivfflat"
    assert choose_kind(3_000_000, 384) == "ivfsq8"  # 4.6 GB raw, 1.2 GB as 8-bit codes
    assert choose_kind(10_000_000, 384) == "ivfpq"
    # Exact search cost grows with n * dim: low-dimensional (attribute-space) galleries stay
    # flat much longer.
    assert choose_kind(217_000, 33) == "flat"
    assert choose_kind(300_000, 33) == "ivfflat"


def test_bad_files_are_skipped_and_counted_or_refused_with_strict(tmp_path, tiny_checkpoint):
    root = make_gallery(tmp_path / "g", 30)
    np.save(root / "sequences" / "g00003.npy", np.zeros((5, 18, 3), np.float32))  # too short
    (root / "sequences" / "g00004.npy").write_bytes(b"not numpy")
    np.save(root / "sequences" / "stray.npy", walking_like(np.random.default_rng(1)))
    with (root / "metadata.jsonl").open("a") as fh:
        fh.write("{broken json\n")
    result = build_index(root, tmp_path / "idx", tiny_checkpoint, progress=False)
    assert result.count == 28 and result.skipped == 4
    assert any("g00003.npy" in p for p in result.problems)
    assert any("stray.npy" in p and "unknown id" in p for p in result.problems)
    assert load_index(tmp_path / "idx").get("g00003") is None

    runner = CliRunner()
    out = runner.invoke(
        app,
        ["index", "build", "--data", str(root), "--index-dir", str(tmp_path / "idx2"),
         "--checkpoint", str(tiny_checkpoint), "--strict"],
    )  # fmt: skip
    assert out.exit_code == 2
    assert "error:" in out.output and "Traceback" not in out.output
    assert not (tmp_path / "idx2" / "CURRENT").exists()
    assert not list((tmp_path / "idx2" / "versions").iterdir())


def test_cli_build_twice_then_activate_first_switches_back(
    gallery, tiny_checkpoint, tmp_path, monkeypatch
):
    monkeypatch.setenv("GAITSEARCH_INDEX_DIR", str(tmp_path / "idx"))
    runner = CliRunner()
    args = ["index", "build", "--data", str(gallery), "--checkpoint", str(tiny_checkpoint)]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "indexed 120, skipped 0; version v0001" in first.output
    second = runner.invoke(app, [*args, "--kind", "hnsw"])
    assert second.exit_code == 0, second.output
    assert current_version(tmp_path / "idx") == "v0002"
    assert load_index(tmp_path / "idx").kind == "hnsw"

    listing = runner.invoke(app, ["index", "list"])
    assert "* v0002" in listing.output and "  v0001" in listing.output
    back = runner.invoke(app, ["index", "activate", "v0001"])
    assert back.exit_code == 0 and "v0001 (was v0002)" in back.output
    assert current_version(tmp_path / "idx") == "v0001"
    live = load_index(tmp_path / "idx")
    assert live.version == "v0001" and live.kind == "flat" and live.count == 120

    missing = runner.invoke(app, ["index", "activate", "v0009"])
    assert missing.exit_code == 2 and "v0009" in missing.output
    assert current_version(tmp_path / "idx") == "v0001"


def test_add_remove_and_gc(gallery, tiny_checkpoint, tmp_path):
    idx = tmp_path / "idx"
    base = build_index(gallery, idx, tiny_checkpoint, progress=False)
    # 20 new ids plus 5 that replace existing ones (g00115..g00119).
    extra = make_gallery(tmp_path / "extra", 25, start=115, seed=9)
    added = add_to_index(extra, idx, tiny_checkpoint, progress=False)
    assert added.count == 140 and added.manifest.parent == base.version
    live = load_index(idx)
    assert live.count == 140 and live.get("g00139") is not None
    # The replaced sequence now carries the new embedding.
    new_vec = live.vector("g00117")
    assert live.search(new_vec[None], 1)[0][0].id == "g00117"
    old = load_index(idx, base.version)
    assert not np.allclose(old.vector("g00117"), new_vec)
    old.close()
    live.close()

    removed = remove_from_index(idx, ["g00000", "g00139"])
    assert removed.count == 138
    live = load_index(idx)
    assert live.get("g00000") is None and live.get("g00001") is not None
    live.close()
    with pytest.raises(Exception, match="not-there"):
        remove_from_index(idx, ["not-there"])
    assert current_version(idx) == removed.version

    removed_versions, _ = collect_garbage(idx, keep=1)
    assert removed_versions == [base.version, added.version]
    assert [p.name for p in (idx / "versions").iterdir()] == [removed.version]
    assert load_index(idx).count == 138


def test_add_to_ivf_keeps_quantiser_and_ids(gallery, tiny_checkpoint, tmp_path):
    idx = tmp_path / "idx"
    build_index(gallery, idx, tiny_checkpoint, kind="ivfflat", progress=False)
    extra = make_gallery(tmp_path / "extra", 10, start=200, seed=3)
    add_to_index(extra, idx, tiny_checkpoint, progress=False)
    remove_from_index(idx, ["g00005"])
    live = load_index(idx)
    assert live.kind == "ivfflat" and live.count == 129
    assert live.get("g00005") is None
    hits = live.search(live.vector("g00203")[None], 1, {"view": VIEWS[203 % 3]})[0]
    assert hits[0].id == "g00203"
    assert live.manifest.recall is not None and live.manifest.recall.queries > 0
    live.close()


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(IndexLoadError, match="CURRENT"):
        load_index(tmp_path / "empty")
    with pytest.raises(IndexLoadError, match="v0003"):
        activate_version(tmp_path, "v0003")


def test_bf16_precision_is_recorded_and_close_to_fp32(gallery, tiny_checkpoint, tmp_path):
    idx = tmp_path / "idx"
    exact = build_index(gallery, idx, tiny_checkpoint, progress=False)
    fast = build_index(gallery, idx, tiny_checkpoint, precision="bf16", progress=False)
    assert exact.manifest.precision == "fp32" and fast.manifest.precision == "bf16"
    a, b = load_index(idx, exact.version), load_index(idx, fast.version)
    ids = [f"g{i:05d}" for i in range(0, 120, 7)]
    va, vb = np.stack([a.vector(i) for i in ids]), np.stack([b.vector(i) for i in ids])
    assert not np.array_equal(va, vb)  # really computed in another precision
    assert (va * vb).sum(1).min() > 0.999
    extra = make_gallery(tmp_path / "extra", 3, start=300)
    assert add_to_index(extra, idx, tiny_checkpoint, progress=False).manifest.precision == "bf16"
    with pytest.raises(ValueError, match="precision"):
        build_index(gallery, idx, tiny_checkpoint, precision="fp8", progress=False)


def test_synthetic_world_gallery_uses_its_queries_for_recall(tiny_checkpoint, tmp_path):
    from gaitsearch.model.attributes import ATTRIBUTES
    from gaitsearch.model.synth import synthesize_gallery

    synthesize_gallery(tmp_path / "syn", count=60, seed=3)
    result = build_index(tmp_path / "syn", tmp_path / "idx", tiny_checkpoint, kind="hnsw",
                         progress=False)  # fmt: skip
    assert result.count == 60 and result.skipped == 0
    assert result.manifest.recall.query_source == "queries.jsonl"
    live = load_index(tmp_path / "idx")
    assert set(ATTRIBUTES) <= live.filter_keys
    assert "speed_mps" not in live.filter_keys  # measured floats are not filters
    hits = live.search(live.vector("syn-000004")[None], 60, {"view": "side"})[0]
    assert hits and all(h.metadata["attributes"]["view"] == "side" for h in hits)
    live.close()


def test_cli_add_remove_gc_and_errors(gallery, tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.delenv("GAITSEARCH_INDEX_DIR", raising=False)
    runner = CliRunner()
    no_dir = runner.invoke(app, ["index", "list"])
    assert no_dir.exit_code == 2 and "GAITSEARCH_INDEX_DIR" in no_dir.output
    monkeypatch.setenv("GAITSEARCH_INDEX_DIR", str(tmp_path / "idx"))
    ckpt = ["--checkpoint", str(tiny_checkpoint)]
    assert runner.invoke(app, ["index", "build", "--data", str(gallery), *ckpt]).exit_code == 0
    extra = make_gallery(tmp_path / "extra", 4, start=400)
    added = runner.invoke(app, ["index", "add", "--data", str(extra)])
    assert added.exit_code == 0, added.output
    assert "indexed 124, skipped 0; version v0002 (add)" in added.output
    removed = runner.invoke(app, ["index", "remove", "--ids", "g00400,g00401"])
    assert "indexed 122, skipped 0; version v0003 (remove)" in removed.output
    unknown = runner.invoke(app, ["index", "remove", "--ids", "zzz"])
    assert unknown.exit_code == 2 and "zzz" in unknown.output and "Traceback" not in unknown.output
    gc = runner.invoke(app, ["index", "gc", "--keep", "2"])
    assert gc.exit_code == 0 and "removed 1 version(s): v0001" in gc.output
    listing = runner.invoke(app, ["index", "list"]).output
    assert "v0001" not in listing and "* v0003" in listing and "  v0002" in listing
    bad_kind = runner.invoke(app, ["index", "build", "--data", str(gallery), "--kind", "lsh"])
    assert bad_kind.exit_code == 2 and "lsh" in bad_kind.output
    assert current_version(tmp_path / "idx") == "v0003"


def _embed_all(gallery: Path, model, **kwargs):
    from gaitsearch.index.embed_job import embed_local
    from gaitsearch.model.gallery import GalleryReport

    report = GalleryReport()
    batches = list(embed_local(gallery, model, 16, report, **kwargs))
    ids = [r.id for b in batches for r in b.records]
    paths = [p for b in batches for p in b.paths]
    vectors = np.concatenate([b.vectors for b in batches])
    return ids, paths, vectors, report


def test_worker_processes_give_the_in_process_vectors_and_problems(tmp_path):
    """The local engine's process pool (the default on big galleries) embeds exactly what
    the in-process path does, in gallery order, and reports the same bad files."""
    from gaitsearch.model.checkpoint import load_checkpoint

    gallery = make_gallery(tmp_path / "g", 70)
    (gallery / "sequences" / "g00005.npy").write_bytes(b"\x93NUMPY truncated")
    (gallery / "sequences" / "g00040.npy").unlink()
    model = load_checkpoint(None)  # the shipped one: measured groups included
    ids1, paths1, v1, r1 = _embed_all(gallery, model, workers=1)
    ids2, paths2, v2, r2 = _embed_all(gallery, model, workers=2, pool_min=0)
    assert len(ids1) == 68 and ids2 == ids1 and paths2 == paths1
    assert np.array_equal(v1, v2)
    assert (r2.ok, r2.skipped) == (r1.ok, r1.skipped) == (68, 2)
    assert sorted(r2.problems) == sorted(r1.problems)


def test_worker_processes_refuse_a_bad_file_when_strict(tmp_path):
    from gaitsearch.model.checkpoint import load_checkpoint
    from gaitsearch.model.gallery import GalleryError

    gallery = make_gallery(tmp_path / "g", 40)
    (gallery / "sequences" / "g00030.npy").unlink()
    with pytest.raises(GalleryError, match="g00030"):
        _embed_all(gallery, load_checkpoint(None), workers=2, pool_min=0, strict=True)


def test_a_worker_that_cannot_embed_fails_the_build_in_one_line(tmp_path):
    """A worker whose checkpoint is not the build's (changed on disk mid-build) refuses,
    and the parent raises it instead of waiting or indexing other vectors."""
    import copy

    from gaitsearch.index.embed_job import EmbedWorkerError
    from gaitsearch.model.checkpoint import load_checkpoint

    gallery = make_gallery(tmp_path / "g", 20)
    model = copy.copy(load_checkpoint(None))
    model.fingerprint = "0000000000000000"
    with pytest.raises(EmbedWorkerError, match="checkpoint changed during the build"):
        _embed_all(gallery, model, workers=2, pool_min=0)
