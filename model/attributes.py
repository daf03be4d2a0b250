"""The attribute vocabulary of the synthetic gait world (and the common target of importers).

Every synthetic sequence carries one value per group. The kinematic effect of each value is
implemented in the synthetic walker and tabled in the README; describers turn attribute sets
into English; evaluation and false-negative masking compare attribute sets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "gender": ("male", "female"),
    "age": ("child", "young", "adult", "elderly"),
    "build": ("slim", "average", "heavy"),
    "pace": ("slow", "normal", "brisk", "running"),
    "footwear": ("flat", "heels", "boots"),
    "carrying": (
        "nothing",
        "handbag",
        "backpack",
        "suitcase",
        "phone_call",
        "texting",
        "hands_in_pockets",
    ),
    "impairment": ("none", "limp", "cane"),
    "energy": ("neutral", "tired", "lively", "confident"),
    "emotion": ("neutral", "sad", "happy", "angry", "proud", "fearful"),
    "posture": ("normal", "hunched", "upright", "head_down"),
    "step": (
        "normal",
        "shuffling",
        "stomping",
        "bouncy",
        "long_strides",
        "short_steps",
        "on_toes",
    ),
    "arm_swing": ("normal", "wide", "stiff", "none"),
    "style": ("none", "hip_sway", "swagger", "marching", "staggering", "sneaking"),
    "view": ("front", "back", "side", "oblique"),
}

# Groups whose values change the motion itself (view changes only the camera).
MOTION_GROUPS: tuple[str, ...] = (
    "gender",
    "age",
    "build",
    "pace",
    "footwear",
    "carrying",
    "impairment",
    "energy",
    "emotion",
    "posture",
    "step",
    "arm_swing",
    "style",
)

# The walking-style groups (issue F): each value's effect is scaled by a per-walker
# intensity drawn around 1, so two walkers with the same style differ.
STYLE_GROUPS: tuple[str, ...] = ("emotion", "posture", "step", "arm_swing", "style")


def attribute_key(attributes: Mapping[str, Any], groups: tuple[str, ...] | None = None) -> str:
    """A canonical string for an attribute set: equal sets give equal keys."""
    groups = groups or tuple(sorted(attributes))
    return "|".join(f"{g}={attributes.get(g)}" for g in groups)


def check_attributes(attributes: Mapping[str, Any]) -> None:
    """Raise ValueError for a group or value outside the vocabulary."""
    for group, value in attributes.items():
        if group not in ATTRIBUTES:
            raise ValueError(f"unknown attribute group {group!r}; known: {sorted(ATTRIBUTES)}")
        if value not in ATTRIBUTES[group]:
            raise ValueError(
                f"unknown value {value!r} for {group!r}; known: {list(ATTRIBUTES[group])}"
            )
