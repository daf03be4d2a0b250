"""Measured groups: descriptor bins beside the recognised attributes (model/measured.py)."""

from __future__ import annotations

import numpy as np
import pytest
from gaitsearch.model.measured import DEFAULT_GROUPS, FLOOR, MeasuredGroup, MeasuredSpace

VOCAB = {
    "pace": ["slow", "normal", "brisk", "running"],
    "step": ["normal", "shuffling", "long_strides"],
}


def test_ordered_bins_follow_the_measurement():
    speed = MeasuredGroup("speed", "speed", ("slow", "moderate", "fast"), (0.5, 1.0), 0.05)
    p = speed.probabilities(np.array([0.2, 0.75, 1.6]))
    assert p.shape == (3, 3)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-9)
    assert list(p.argmax(1)) == [0, 1, 2]
    llr = speed.log_ratios(np.array([0.2, np.nan]))
    # a clear measurement is evidence for its bin and against the others, bounded by the floor
    assert llr[0, 0] > 0 > llr[0, 2] >= np.log(FLOOR / 3) + np.log(3) - 1e-6
    assert np.all(llr[1] == 0)  # not measurable: no evidence either way


def test_query_part_carries_the_attribute_probability_to_linked_values():
    space = MeasuredSpace(DEFAULT_GROUPS, VOCAB)
    named = np.zeros((2, 7), dtype=np.float32)
    named[0, 0] = 0.9  # pace slow
    named[1, 5] = 0.8  # step shuffling → low foot clearance and short stride
    part = space.query_part(named)
    cols = {}
    start = 0
    for g in space.groups:
        for v in g.values:
            cols[(g.name, v)] = start
            start += 1
    assert part.shape == (2, space.dim)
    assert part[0, cols[("speed", "slow")]] == pytest.approx(0.9)
    assert part[0].sum() == pytest.approx(0.9)
    assert part[1, cols[("foot_clearance", "low")]] == pytest.approx(0.8)
    assert part[1, cols[("stride", "short")]] == pytest.approx(0.8)
    assert part[1, cols[("speed", "slow")]] == 0
    # Every measured value: the largest probability among the attribute values linked to it.
    rng = np.random.default_rng(0)
    named = rng.random((50, 7), dtype=np.float32)
    want = np.max(named[:, :, None] * space.link_map[None], axis=1)
    assert np.array_equal(space.query_part(named), want)
    assert space.query_part(named[:0]).shape == (0, space.dim)


def test_terms_and_config_round_trip():
    space = MeasuredSpace.from_config(MeasuredSpace.default_config(0.5), VOCAB)
    assert [g.weight for g in space.groups] == [0.5 * g.weight for g in DEFAULT_GROUPS]
    terms = space.terms([("pace", "slow", 0.9), ("step", "shuffling", 0.6), ("pace", "x", 1.0)])
    assert ("speed", "slow", 0.9) in terms and ("foot_clearance", "low", 0.6) in terms
    assert len(terms) == 3
    # links to values outside this vocabulary are dropped, not an error
    assert ("posture", "hunched") not in space.links


def test_measured_part_ranks_synthetic_walkers_by_their_speed(tmp_path, text_encoder):
    """Index rows of a checkpoint with measured groups: the speed part alone, asked for
    "slow", puts truly slow walkers (side view: speed is measurable) above brisk ones."""
    from conftest import save_tiny_checkpoint
    from gaitsearch.model.checkpoint import load_checkpoint
    from gaitsearch.model.gallery import iter_gallery
    from gaitsearch.model.synth import synthesize_gallery

    ckpt = save_tiny_checkpoint(tmp_path / "ck", text_encoder, space="attributes", measured=True)
    model = load_checkpoint(ckpt)
    space = model.search_space
    assert space.measured is not None and model.dim == space.learned_dim + space.measured.dim
    synthesize_gallery(tmp_path / "g", count=160, seed=4)
    rows = [(r, a) for r, a in iter_gallery(tmp_path / "g") if r.attributes["view"] == "side"]
    vectors = model.embed_sequences([a for _, a in rows], [r.fps for r, _ in rows])
    assert vectors.shape == (len(rows), model.dim) and np.isfinite(vectors).all()
    vocab = model.config.encoder.attribute_vocabulary
    named = np.zeros((1, space.learned_dim), dtype=np.float32)
    groups = list(vocab)
    start = sum(len(vocab[g]) for g in groups[: groups.index("pace")])
    named[0, start + vocab["pace"].index("slow")] = 1.0
    query = space.finish_queries(np.concatenate([named, np.zeros((1, space.measured.dim))], 1))
    assert query[0, : space.learned_dim].sum() == 1.0 and query[0, space.learned_dim :].sum() == 1.0
    scores = vectors[:, space.learned_dim :] @ query[0, space.learned_dim :]
    pace = np.array([r.attributes["pace"] for r, _ in rows])
    assert scores[pace == "slow"].mean() > scores[pace == "normal"].mean()
    assert scores[pace == "normal"].mean() > scores[pace == "brisk"].mean()
    # a query whose pace was restricted away asks nothing of the measured speed either
    restricted = space.finish_queries(np.zeros_like(query))
    assert not restricted.any()
