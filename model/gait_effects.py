"""What each attribute value does to a synthetic walker: one entry per value.

Each value of an attribute group (``gender``, ``pace``, ``carrying``, ...) is a
:class:`GaitEffect`: a plain-English note (for the docs, kept next to the numbers) and the
changes it makes to the walker's base parameters (:data:`BASE_PARAMETERS`), each
multiplicative (``"*"``) or additive (``"+"``, degrees for angles), applied in the order
written. A new style is one new entry in :data:`GAIT_EFFECTS`; what a parameter means for
the motion, and the held arm poses, live in :mod:`gaitsearch.model.walker`.

Parameters: speed, stride, arm (swing amplitude), knee_swing (swing-phase knee flexion:
foot clearance), lean (trunk forward lean, deg), head (head pitch down, deg), sway
(pelvis lateral sway), rot (pelvic rotation), list (pelvic obliquity), bounce (scale of
the pelvis' vertical excursion, which itself comes from leg geometry), step_width,
hip_w / shoulder_w (half widths), elbow (resting elbow flexion, deg), abduct (arm
abduction, deg), hip_lift (extra hip flexion in late swing: knee lift, deg).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Change = tuple[Literal["*", "+"], float]

# The reference walker (an adult at normal pace), before any attribute's effect.
BASE_PARAMETERS: dict[str, float] = {
    "speed": 1.35,
    "stride": 1.0,
    "arm": 22.0,
    "knee_swing": 62.0,
    "lean": 2.0,
    "head": 3.0,
    "sway": 0.022,
    "rot": 5.0,
    "list": 4.0,
    "bounce": 0.75,
    "step_width": 0.1,
    "hip_w": 0.052,
    "shoulder_w": 0.118,
    "elbow": 15.0,
    "abduct": 7.0,
    "hip_lift": 0.0,
}


@dataclass(frozen=True)
class GaitEffect:
    """One attribute value: what it looks like, and its parameter changes in order."""

    note: str
    changes: dict[str, Change] = field(default_factory=dict)


GAIT_EFFECTS: dict[str, dict[str, GaitEffect]] = {
    "gender": {
        "male": GaitEffect(
            "wider shoulders, narrower hips; taller on average (1.77 m vs 1.63 m)",
            {
                "shoulder_w": ("*", 1.06),
                "hip_w": ("*", 0.95),
            },
        ),
        "female": GaitEffect(
            (
                "narrower shoulders, wider hips, more pelvic sway/rotation/list, feet placed "
                "closer to the midline"
            ),
            {
                "shoulder_w": ("*", 0.93),
                "hip_w": ("*", 1.1),
                "sway": ("*", 1.35),
                "list": ("*", 1.35),
                "rot": ("*", 1.2),
                "step_width": ("*", 0.8),
                "elbow": ("+", 6.0),
            },
        ),
    },
    "age": {
        "child": GaitEffect(
            (
                "1.0-1.5 m tall with a larger head and shorter legs relative to height: short "
                "strides, high cadence, more bounce"
            ),
            {
                "speed": ("*", 0.9),
                "arm": ("*", 1.1),
                "step_width": ("*", 1.2),
                "bounce": ("*", 1.2),
                "head": ("+", -3.0),
            },
        ),
        "young": GaitEffect(
            "slightly faster, bigger arm swing",
            {
                "speed": ("*", 1.05),
                "arm": ("*", 1.1),
                "stride": ("*", 1.02),
            },
        ),
        "adult": GaitEffect(
            "reference gait (1.35 m/s comfortable speed)",
        ),
        "elderly": GaitEffect(
            (
                "slower (about 1.05 m/s), shorter stride, stooped trunk and head, small arm "
                "swing, wider base, less knee flexion"
            ),
            {
                "speed": ("*", 0.78),
                "stride": ("*", 0.92),
                "arm": ("*", 0.55),
                "lean": ("+", 9.0),
                "head": ("+", 8.0),
                "knee_swing": ("*", 0.8),
                "step_width": ("*", 1.35),
                "rot": ("*", 0.7),
                "bounce": ("*", 0.7),
                "elbow": ("+", 10.0),
            },
        ),
    },
    "build": {
        "slim": GaitEffect(
            "narrower shoulders and hips",
            {
                "shoulder_w": ("*", 0.92),
                "hip_w": ("*", 0.92),
                "step_width": ("*", 0.9),
            },
        ),
        "average": GaitEffect(
            "reference",
        ),
        "heavy": GaitEffect(
            (
                "wider shoulders/hips, wider steps and more lateral sway, arms held away from "
                "the body, slightly slower"
            ),
            {
                "shoulder_w": ("*", 1.15),
                "hip_w": ("*", 1.2),
                "speed": ("*", 0.92),
                "step_width": ("*", 1.5),
                "sway": ("*", 1.4),
                "abduct": ("+", 9.0),
                "arm": ("*", 0.85),
                "stride": ("*", 0.95),
            },
        ),
    },
    "pace": {
        "slow": GaitEffect(
            "about 0.9 m/s, small arm swing",
            {
                "speed": ("*", 0.68),
                "arm": ("*", 0.7),
                "knee_swing": ("*", 0.92),
            },
        ),
        "normal": GaitEffect(
            "about 1.35 m/s, cadence about 110-115 steps/min",
        ),
        "brisk": GaitEffect(
            "about 1.75 m/s, longer strides and higher cadence, big arm swing",
            {
                "speed": ("*", 1.3),
                "arm": ("*", 1.35),
                "lean": ("+", 2.5),
            },
        ),
        "running": GaitEffect(
            (
                "2.4-3.6 m/s: flight phase (duty factor 0.36), cadence about 150-190 steps/min,"
                " deep swing knee flexion, elbows bent about 90 degrees, forward lean"
            ),
            {
                "lean": ("+", 7.0),
                "elbow": ("+", 75.0),
                "arm": ("*", 1.5),
            },
        ),
    },
    "footwear": {
        "flat": GaitEffect(
            "reference",
        ),
        "heels": GaitEffect(
            (
                "raised heels (+7 cm), stride about 19% shorter at a given speed (so higher "
                "cadence), more pelvic rotation, list and sway, feet placed on a line, stiffer "
                "knees"
            ),
            {
                "speed": ("*", 0.93),
                "stride": ("*", 0.81),
                "rot": ("*", 1.6),
                "list": ("*", 1.7),
                "sway": ("*", 1.5),
                "step_width": ("*", 0.3),
                "knee_swing": ("*", 0.85),
                "arm": ("*", 0.9),
            },
        ),
        "boots": GaitEffect(
            (
                "heavier feet: more foot clearance (swing knee flexion +20%, knee lift), "
                "slightly slower with longer, less frequent steps, wider steps, more bounce"
            ),
            {
                "speed": ("*", 0.95),
                "stride": ("*", 1.04),
                "knee_swing": ("*", 1.2),
                "hip_lift": ("+", 9.0),
                "step_width": ("*", 1.2),
                "bounce": ("*", 1.15),
            },
        ),
    },
    "carrying": {
        "nothing": GaitEffect(
            "free arm swing",
        ),
        "handbag": GaitEffect(
            (
                "bag arm's swing damped to a quarter, elbow slightly bent, trunk leans away "
                "from the bag, bag-side shoulder raised"
            ),
            {
                "speed": ("*", 0.97),
            },
        ),
        "backpack": GaitEffect(
            "forward trunk lean; hands hold the straps or swing less",
            {
                "lean": ("+", 6.0),
                "speed": ("*", 0.97),
                "head": ("+", -2.0),
            },
        ),
        "suitcase": GaitEffect(
            "one arm extended back and still (pulling), slower and shorter steps",
            {
                "speed": ("*", 0.9),
                "stride": ("*", 0.95),
                "lean": ("+", 2.0),
            },
        ),
        "phone_call": GaitEffect(
            "one hand held at the ear, the other swings",
            {
                "speed": ("*", 0.93),
                "head": ("+", 4.0),
            },
        ),
        "texting": GaitEffect(
            (
                "head bent about 30 degrees down, both hands in front of the chest, no arm "
                "swing, slower and shorter steps"
            ),
            {
                "speed": ("*", 0.8),
                "stride": ("*", 0.95),
                "head": ("+", 32.0),
                "lean": ("+", 3.0),
                "step_width": ("*", 1.2),
            },
        ),
        "hands_in_pockets": GaitEffect(
            "no arm swing, hands at the hips, less pelvic rotation",
            {
                "speed": ("*", 0.97),
                "rot": ("*", 0.8),
            },
        ),
    },
    "impairment": {
        "none": GaitEffect(
            "symmetric gait",
        ),
        "limp": GaitEffect(
            (
                "one bad leg: shorter stance on it (asymmetric step timing), stiff knee, "
                "smaller hip excursion, trunk leans over it during its stance, slower"
            ),
            {
                "speed": ("*", 0.8),
                "stride": ("*", 0.93),
                "bounce": ("*", 1.3),
            },
        ),
        "cane": GaitEffect(
            (
                "slow, cane hand (opposite the weaker leg) held forward and moving with the "
                "opposite leg, trunk leans forward and toward the cane, mild asymmetry"
            ),
            {
                "speed": ("*", 0.6),
                "stride": ("*", 0.9),
                "lean": ("+", 6.0),
                "step_width": ("*", 1.3),
            },
        ),
    },
    "energy": {
        "neutral": GaitEffect(
            "reference",
        ),
        "tired": GaitEffect(
            (
                "shuffling: little foot clearance, short slow steps, stooped trunk, head down, "
                "small arm swing, little bounce"
            ),
            {
                "speed": ("*", 0.82),
                "stride": ("*", 0.9),
                "knee_swing": ("*", 0.6),
                "hip_lift": ("+", -4.0),
                "arm": ("*", 0.55),
                "lean": ("+", 7.0),
                "head": ("+", 12.0),
                "bounce": ("*", 0.6),
            },
        ),
        "confident": GaitEffect(
            "upright trunk, head up, longer stride, bigger arm swing",
            {
                "speed": ("*", 1.07),
                "stride": ("*", 1.08),
                "arm": ("*", 1.35),
                "lean": ("+", -3.0),
                "head": ("+", -6.0),
                "shoulder_w": ("*", 1.03),
            },
        ),
    },
    "view": {
        "front": GaitEffect(
            "camera ahead of the walker (walking toward it)",
        ),
        "back": GaitEffect(
            "camera behind (walking away)",
        ),
        "side": GaitEffect(
            "camera perpendicular to the path (walking left or right across the image)",
        ),
        "oblique": GaitEffect(
            "camera about 45 degrees off the path, front or back",
        ),
    },
}


def apply_effect(values: dict[str, float], group: str, value: Any) -> None:
    """Apply one attribute value's changes to ``values`` in place (unknown values: none)."""
    effect = GAIT_EFFECTS.get(group, {}).get(str(value))
    if effect is None:
        return
    for name, (op, amount) in effect.changes.items():
        if op == "*":
            values[name] *= amount
        else:
            values[name] += amount


def pace_speed_factor(pace: Any) -> float:
    """The speed multiplier of a pace value alone (1.0 when it changes no speed)."""
    effect = GAIT_EFFECTS["pace"].get(str(pace))
    if effect is None or "speed" not in effect.changes:
        return 1.0
    return effect.changes["speed"][1]
