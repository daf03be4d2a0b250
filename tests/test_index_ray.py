"""The Ray engine embeds on a real local Ray cluster and gives the local engine's vectors."""

from __future__ import annotations

import numpy as np
import pytest
from gaitsearch.index.build import build_index
from gaitsearch.index.loaded_index import load_index
from test_index_build import make_gallery


@pytest.mark.slow
def test_ray_engine_matches_local_engine(tiny_checkpoint, tmp_path):
    pytest.importorskip("ray")
    gallery = make_gallery(tmp_path / "g", 36)
    np.save(gallery / "sequences" / "g00010.npy", np.zeros((3, 18, 3), np.float32))  # bad
    idx = tmp_path / "idx"
    local = build_index(gallery, idx, tiny_checkpoint, batch_size=8, progress=False)
    distributed = build_index(
        gallery, idx, tiny_checkpoint, engine="ray", workers=2, batch_size=8, progress=False
    )
    assert local.count == distributed.count == 35
    assert distributed.skipped == local.skipped == 1
    assert any("g00010.npy" in p for p in distributed.problems)
    a, b = load_index(idx, local.version), load_index(idx, distributed.version)
    ids = [f"g{i:05d}" for i in range(36) if i != 10]
    va = np.stack([a.vector(i) for i in ids])
    vb = np.stack([b.vector(i) for i in ids])
    np.testing.assert_allclose(va, vb, atol=1e-5)
    assert b.get("g00010") is None
    assert b.get("g00011")["path"] == a.get("g00011")["path"]
    a.close()
    b.close()


def test_unreachable_ray_address_fails_fast_and_publishes_nothing(tiny_checkpoint, tmp_path):
    pytest.importorskip("ray")
    from gaitsearch.index.ray_job import RayJobError

    gallery = make_gallery(tmp_path / "g", 4)
    with pytest.raises(RayJobError, match="127.0.0.1:1"):
        build_index(gallery, tmp_path / "idx", tiny_checkpoint, engine="ray",
                    ray_address="127.0.0.1:1", progress=False)  # fmt: skip
    assert not (tmp_path / "idx" / "CURRENT").exists()
    assert not list((tmp_path / "idx" / "versions").iterdir())
