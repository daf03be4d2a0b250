"""Attribute-tagged captions: what they name is what they are tagged with."""

from __future__ import annotations

import numpy as np
from gaitsearch.model.attributes import ATTRIBUTES
from gaitsearch.model.captions import (
    GROUPS,
    applies_mask,
    build_captions,
    encode_attributes,
)

WALKERS = [
    {"gender": "female", "age": "young", "build": "slim", "pace": "brisk", "footwear": "heels",
     "carrying": "handbag", "impairment": "none", "energy": "confident", "emotion": "happy",
     "posture": "upright", "step": "bouncy", "arm_swing": "wide", "style": "hip_sway",
     "view": "side"},
    {"gender": "male", "age": "elderly", "build": "average", "pace": "slow", "footwear": "flat",
     "carrying": "nothing", "impairment": "cane", "energy": "tired", "emotion": "sad",
     "posture": "hunched", "step": "shuffling", "arm_swing": "none", "style": "none",
     "view": "front"},
]  # fmt: skip


def test_codes_round_trip_and_unknowns_are_minus_one() -> None:
    code = encode_attributes(WALKERS[0])
    assert [ATTRIBUTES[g][v] for g, v in zip(GROUPS, code, strict=True)] == [
        WALKERS[0][g] for g in GROUPS
    ]
    partial = encode_attributes({"pace": "brisk", "colour": "red", "footwear": "stilts"})
    assert partial[GROUPS.index("pace")] == 2
    assert (np.delete(partial, GROUPS.index("pace")) == -1).all()


def test_captions_are_deterministic_and_fit_their_walker() -> None:
    table = build_captions(WALKERS * 10, per_sequence=6, seed=3)
    again = build_captions(WALKERS * 10, per_sequence=6, seed=3)
    assert table.texts == again.texts
    assert len(set(table.texts)) == len(table.texts)
    fits = applies_mask(table.codes, table.sequence_codes)
    for i, rows in enumerate(table.of_sequence):
        assert len(rows) > 0
        assert fits[rows, i].all()  # every caption of a walker applies to it
        named = (table.codes[rows] >= 0).sum(1)
        assert named.min() >= 1 and named.max() <= 6
    # A caption naming "heels" never applies to the man with a cane.
    heels = ATTRIBUTES["footwear"].index("heels")
    rows = np.where(table.codes[:, GROUPS.index("footwear")] == heels)[0]
    assert len(rows) and not fits[rows, 1].any()


def test_default_only_subsets_are_avoided() -> None:
    plain = {"carrying": "nothing", "impairment": "none", "pace": "slow"}
    table = build_captions([plain], per_sequence=20, seed=0)
    pace = GROUPS.index("pace")
    assert (table.codes[:, pace] >= 0).all()  # "carrying nothing" alone is never a caption


def test_captions_name_the_style_groups() -> None:
    """Captions over the 14 groups name the new style values in training phrasing."""
    table = build_captions(WALKERS * 20, per_sequence=8, seed=1)
    for group in ("emotion", "posture", "step", "arm_swing", "style"):
        assert (table.codes[:, GROUPS.index(group)] >= 0).any(), group
    shuffling = ATTRIBUTES["step"].index("shuffling")
    rows = np.where(table.codes[:, GROUPS.index("step")] == shuffling)[0]
    assert len(rows)
    assert all("shuffl" in table.texts[r].lower() or "feet" in table.texts[r] for r in rows)


def test_old_nine_group_walkers_still_caption() -> None:
    old = {g: v for g, v in WALKERS[1].items() if g not in ("emotion", "posture", "step",
                                                           "arm_swing", "style")}  # fmt: skip
    table = build_captions([old], per_sequence=6, seed=0)
    assert table.texts and (table.codes[:, GROUPS.index("emotion")] == -1).all()
