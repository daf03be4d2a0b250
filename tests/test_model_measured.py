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


def test_terms_and_config_round_trip():
    space = MeasuredSpace.from_config(MeasuredSpace.default_config(0.5), VOCAB)
    assert [g.weight for g in space.groups] == [0.5 * g.weight for g in DEFAULT_GROUPS]
    terms = space.terms([("pace", "slow", 0.9), ("step", "shuffling", 0.6), ("pace", "x", 1.0)])
    assert ("speed", "slow", 0.9) in terms and ("foot_clearance", "low", 0.6) in terms
    assert len(terms) == 3
    # links to values outside this vocabulary are dropped, not an error
    assert ("posture", "hunched") not in space.links
