"""Sharded serving: a gallery split by id, each part its own index, served as one index.

Over exact (flat) shards the merged answer is the unsharded index's answer, hit for hit;
the service and the CLI open a shard list root like an index directory; the parts are
built on a real local Ray cluster in the slow test (how a 10M+ gallery is embedded)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gaitsearch.index.build import build_index
from gaitsearch.index.loaded_index import IndexLoadError, load_index
from gaitsearch.index.shards import (
    ShardError,
    is_sharded,
    live_version,
    load_sharded,
    open_index,
    shard_of,
    split_gallery,
    write_shard_list,
)
from service_helpers import ServiceIndex, write_gallery
from starlette.testclient import TestClient
from test_index_build import make_gallery


def _ids(gallery) -> list[str]:
    lines = (gallery / "metadata.jsonl").read_text().splitlines()
    return [json.loads(line)["id"] for line in lines if line.strip()]


def test_split_gallery_partitions_every_walk_once_by_id(tmp_path):
    gallery = make_gallery(tmp_path / "g", 30)
    parts = split_gallery(gallery, 3, tmp_path / "parts")
    assert [p.name for p, _ in parts] == ["part-00", "part-01", "part-02"]
    seen: list[str] = []
    for i, (part, count) in enumerate(parts):
        ids = _ids(part)
        assert len(ids) == count > 0
        assert all(shard_of(x, 3) == i for x in ids)
        for x in ids:  # symlinks to the original files, nothing copied
            link = part / "sequences" / f"{x}.npy"
            assert link.is_symlink() and link.resolve() == (gallery / "sequences" / f"{x}.npy")
        seen += ids
    assert sorted(seen) == sorted(_ids(gallery))
    with pytest.raises(ShardError, match="not empty"):
        split_gallery(gallery, 3, tmp_path / "parts")
    with pytest.raises(ShardError, match="between 2 and"):
        split_gallery(gallery, 1, tmp_path / "other")


@pytest.fixture(scope="module")
def sharded(tmp_path_factory, tiny_checkpoint):
    """A 60-walk synthetic gallery as one flat index and as three flat shards."""
    root = tmp_path_factory.mktemp("sharded")
    gallery = write_gallery(root / "gallery", count=60, seed=5)
    whole = root / "whole"
    build_index(gallery, whole, tiny_checkpoint, kind="flat", progress=False)
    shard_dirs = []
    for part, _ in split_gallery(gallery, 3, root / "parts"):
        shard_dirs.append(root / f"idx-{part.name}")
        build_index(part, shard_dirs[-1], tiny_checkpoint, kind="flat", progress=False)
    write_shard_list(root / "served", shard_dirs)
    return gallery, whole, shard_dirs, root / "served"


def test_merged_search_over_flat_shards_is_the_unsharded_answer(sharded):
    _, whole, shard_dirs, served = sharded
    assert is_sharded(served) and not is_sharded(whole)
    one, many = load_index(whole), load_sharded(served)
    try:
        assert many.count == one.count == 60
        assert many.version == "+".join(["v0001"] * 3) == live_version(served)
        queries = np.random.default_rng(0).standard_normal((5, one.dim)).astype(np.float32)
        for k in (1, 10, 60):
            a, b = one.search(queries, k), many.search(queries, k)
            for ra, rb in zip(a, b, strict=True):
                assert [h.id for h in ra] == [h.id for h in rb]
                np.testing.assert_allclose([h.score for h in ra], [h.score for h in rb], rtol=1e-5)
        # Sparse queries take each shard's column search; shards searched in parallel
        # threads or one after the other give the same merged answer as the whole index.
        sparse = queries.copy()
        sparse[:, 3:] = 0.0
        assert one.columns is not None and one.columns.takes(sparse).all()
        for qs in (queries, sparse):
            want = [[h.id for h in r] for r in one.search(qs, 10)]
            for parallel in (True, False):
                many.parallel = parallel
                assert [[h.id for h in r] for r in many.search(qs, 10)] == want
        many.parallel = True
        view = {"view": "side"}
        assert [h.id for h in one.search(queries, 10, view)[0]] == [
            h.id for h in many.search(queries, 10, view)[0]
        ]
        with pytest.raises(ValueError, match="unknown filter"):
            many.search(queries, 5, {"no_such_key": "x"})
        walk = one.search(queries[:1], 1)[0][0].id
        got, want = many.get(walk), one.get(walk)
        # The part's path is its symlink to the same file.
        assert Path(got.pop("path")).resolve() == Path(want.pop("path")).resolve()
        assert got == want
        np.testing.assert_array_equal(many.load_keypoints(walk), one.load_keypoints(walk))
        np.testing.assert_allclose(many.vector(walk), one.vector(walk))
        assert many.get("no-such-walk") is None and many.load_keypoints("no-such-walk") is None
    finally:
        one.close()
        many.close()


def test_shard_list_refuses_overlapping_shards_and_writes_into_the_root(sharded, tmp_path):
    gallery, whole, shard_dirs, served = sharded
    with pytest.raises(ShardError, match="is in two shards"):
        write_shard_list(tmp_path / "bad", [whole, shard_dirs[0]])
    with pytest.raises(ShardError, match="named twice"):
        write_shard_list(tmp_path / "bad", [shard_dirs[0], shard_dirs[0]])
    with pytest.raises(IndexLoadError):
        write_shard_list(tmp_path / "bad", [tmp_path / "nothing-here"])
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match="is a shard list"):
        build_index(gallery, served, None, progress=False)
    with pytest.raises(IndexLoadError, match="names 2 shard versions"):
        load_sharded(served, "v0001+v0001")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "shards.json").write_text('{"shards": 3}')
    with pytest.raises(IndexLoadError, match="expected"):
        open_index(tmp_path / "broken")


def test_service_serves_a_shard_list_like_an_index(sharded, tiny_checkpoint, text_encoder):
    _, whole, _, served = sharded
    answers = {}
    for name, where in (("whole", whole), ("served", served)):
        app = ServiceIndex(None, where, tiny_checkpoint).app(text_encoder)
        with TestClient(app) as client:
            r = client.get("/search", params={"q": "a woman walking briskly", "k": 10})
            assert r.status_code == 200, r.text
            answers[name] = r.json()
            stats = client.get("/index").json()
            assert stats["count"] == 60
            first = answers[name]["results"][0]["id"]
            assert client.get(f"/sequences/{first}").status_code == 200
    assert answers["served"]["index_version"] == "v0001+v0001+v0001"
    ids = [[h["id"] for h in answers[n]["results"]] for n in ("whole", "served")]
    assert ids[0] == ids[1] and len(ids[0]) == 10


@pytest.mark.slow
def test_parts_embedded_on_a_local_ray_cluster_serve_as_one_index(
    tiny_checkpoint, tmp_path, monkeypatch
):
    """The 10M+ recipe at toy size: split, embed each part with Ray Data actors in chunks of
    8 walks (the driver holds one chunk at a time), list the parts, search them as one."""
    pytest.importorskip("ray")
    from gaitsearch.index import ray_job

    monkeypatch.setattr(ray_job, "CHUNK", 8)
    gallery = make_gallery(tmp_path / "g", 40)
    whole = tmp_path / "whole"
    build_index(gallery, whole, tiny_checkpoint, kind="flat", progress=False)
    dirs = []
    for part, _ in split_gallery(gallery, 2, tmp_path / "parts"):
        dirs.append(tmp_path / f"idx-{part.name}")
        build_index(
            part, dirs[-1], tiny_checkpoint, engine="ray", workers=2, kind="flat", progress=False
        )
    parts = [load_index(d) for d in dirs]
    assert sum(p.count for p in parts) == 40  # every walk, over several chunks
    for p in parts:
        p.close()
    write_shard_list(tmp_path / "served", dirs)
    one, many = load_index(whole), open_index(tmp_path / "served")
    try:
        queries = np.random.default_rng(1).standard_normal((4, one.dim)).astype(np.float32)
        a, b = one.search(queries, 10), many.search(queries, 10)
        assert [[h.id for h in r] for r in a] == [[h.id for h in r] for r in b]
        np.testing.assert_allclose(
            [[h.score for h in r] for r in a], [[h.score for h in r] for r in b], atol=1e-5
        )
    finally:
        one.close()
        many.close()


def test_serve_preload_accepts_a_shard_root_and_names_an_unpublished_shard(
    sharded, tiny_checkpoint, tmp_path, capsys
):
    import typer
    from gaitsearch.service.cli_serve import _preload

    _, _, shard_dirs, served = sharded
    model, _ = _preload(ServiceIndex(None, served, tiny_checkpoint).settings())
    assert model.fingerprint
    (tmp_path / "empty").mkdir()
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "shards.json").write_text(
        json.dumps({"shards": [str(shard_dirs[0]), str(tmp_path / "empty")]})
    )
    with pytest.raises(typer.Exit):
        _preload(ServiceIndex(None, tmp_path / "root", tiny_checkpoint).settings())
    assert "has no published version" in capsys.readouterr().err
