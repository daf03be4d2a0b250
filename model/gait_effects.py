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

Walking-style parameters (all neutral at their base value, so a walker without a style
moves exactly as before): stagger (metres of irregular lateral deviation of the body's
path, with foot placement following it), step_var (extra cycle-to-cycle timing
variability), impact (metres of sharp pelvis drop just after each heel strike: a heavy,
hard landing), heel_raise (metres of constant heel rise: walking on the toes), elbow_swing
(scale of the elbow's flexion as the arm swings forward; 0 = straight, rigid arms), crouch
(constant extra knee flexion in degrees, with half as much hip flexion: a crouched gait).
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
    "stagger": 0.0,
    "step_var": 0.0,
    "impact": 0.0,
    "heel_raise": 0.0,
    "elbow_swing": 1.0,
    "crouch": 0.0,
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
        "lively": GaitEffect(
            "energetic: faster, more bounce and foot clearance, bigger arm swing",
            {
                "speed": ("*", 1.1),
                "arm": ("*", 1.3),
                "bounce": ("*", 1.3),
                "knee_swing": ("*", 1.1),
                "head": ("+", -3.0),
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
    "emotion": {
        "neutral": GaitEffect(
            "reference",
        ),
        "sad": GaitEffect(
            (
                "Roether 2009 / Gross 2012: slower, shorter strides, much smaller arm swing, "
                "head down about 17 degrees, slightly flexed trunk, contracted shoulders"
            ),
            {
                "speed": ("*", 0.8),
                "stride": ("*", 0.9),
                "arm": ("*", 0.5),
                "head": ("+", 17.0),
                "lean": ("+", 4.0),
                "shoulder_w": ("*", 0.96),
                "bounce": ("*", 0.8),
            },
        ),
        "happy": GaitEffect(
            (
                "Roether 2009 / Montepare 1987: faster, larger arm swing and elbow amplitude, "
                "more bounce, head up"
            ),
            {
                "speed": ("*", 1.1),
                "stride": ("*", 1.04),
                "arm": ("*", 1.4),
                "elbow_swing": ("*", 1.4),
                "bounce": ("*", 1.2),
                "head": ("+", -4.0),
            },
        ),
        "angry": GaitEffect(
            (
                "Roether 2009 / Montepare 1987: fast, heavy-footed (hard heel strike), "
                "large elbow flexion, long strides, trunk forward"
            ),
            {
                "speed": ("*", 1.12),
                "stride": ("*", 1.06),
                "impact": ("+", 0.022),
                "elbow": ("+", 25.0),
                "arm": ("*", 1.2),
                "lean": ("+", 3.0),
            },
        ),
        "proud": GaitEffect(
            (
                "Gross 2012: expanded and upright, chest out, head up, arms swinging a little "
                "wider, unhurried long strides"
            ),
            {
                "lean": ("+", -4.0),
                "head": ("+", -8.0),
                "shoulder_w": ("*", 1.05),
                "arm": ("*", 1.15),
                "abduct": ("+", 3.0),
                "stride": ("*", 1.05),
            },
        ),
        "fearful": GaitEffect(
            (
                "Roether 2009: elbows flexed, slow, short steps, body contracted (trunk "
                "forward, shoulders in, knees slightly bent), little arm swing"
            ),
            {
                "speed": ("*", 0.85),
                "stride": ("*", 0.88),
                "elbow": ("+", 30.0),
                "arm": ("*", 0.6),
                "lean": ("+", 5.0),
                "head": ("+", 4.0),
                "shoulder_w": ("*", 0.94),
                "crouch": ("+", 6.0),
            },
        ),
    },
    "posture": {
        "normal": GaitEffect(
            "reference",
        ),
        "hunched": GaitEffect(
            "trunk flexed forward about 12 degrees more, head down, shoulders rounded in",
            {
                "lean": ("+", 12.0),
                "head": ("+", 6.0),
                "shoulder_w": ("*", 0.94),
                "arm": ("*", 0.85),
            },
        ),
        "upright": GaitEffect(
            "trunk vertical or slightly back, head up, shoulders back",
            {
                "lean": ("+", -3.0),
                "head": ("+", -6.0),
                "shoulder_w": ("*", 1.03),
            },
        ),
        "head_down": GaitEffect(
            "looking at the ground: head pitched about 20 degrees down, trunk unchanged",
            {
                "head": ("+", 20.0),
            },
        ),
    },
    "step": {
        "normal": GaitEffect(
            "reference",
        ),
        "shuffling": GaitEffect(
            (
                "clinical shuffling gait: strides about 30% shorter, low foot clearance (swing "
                "knee flexion about half), little bounce, slower"
            ),
            {
                "speed": ("*", 0.85),
                "stride": ("*", 0.7),
                "knee_swing": ("*", 0.5),
                "hip_lift": ("+", -5.0),
                "bounce": ("*", 0.5),
                "arm": ("*", 0.8),
            },
        ),
        "stomping": GaitEffect(
            (
                "Montepare 1987 heavy-footedness: hard heel strike (a sharp 3 cm pelvis drop "
                "at each landing), higher knee lift"
            ),
            {
                "impact": ("+", 0.03),
                "knee_swing": ("*", 1.1),
                "hip_lift": ("+", 6.0),
                "speed": ("*", 0.97),
            },
        ),
        "bouncy": GaitEffect(
            "springy steps: vertical excursion about 1.7x, more push-off and knee flexion",
            {
                "bounce": ("*", 1.7),
                "knee_swing": ("*", 1.1),
                "heel_raise": ("+", 0.01),
            },
        ),
        "long_strides": GaitEffect(
            "strides about 20% longer (lower cadence at the same speed)",
            {
                "stride": ("*", 1.2),
                "speed": ("*", 1.03),
            },
        ),
        "short_steps": GaitEffect(
            "steps about 22% shorter (higher cadence)",
            {
                "stride": ("*", 0.78),
                "speed": ("*", 0.95),
            },
        ),
        "on_toes": GaitEffect(
            "walking on the toes: heels held about 5 cm off the ground the whole cycle",
            {
                "heel_raise": ("+", 0.05),
                "stride": ("*", 0.92),
                "knee_swing": ("*", 1.05),
            },
        ),
    },
    "arm_swing": {
        "normal": GaitEffect(
            "reference",
        ),
        "wide": GaitEffect(
            "arm swing about 1.7x, arms a little away from the body",
            {
                "arm": ("*", 1.7),
                "abduct": ("+", 5.0),
                "elbow_swing": ("*", 1.2),
            },
        ),
        "stiff": GaitEffect(
            "straight elbows and a small swing from the shoulder",
            {
                "arm": ("*", 0.45),
                "elbow": ("+", -10.0),
                "elbow_swing": ("*", 0.1),
            },
        ),
        "none": GaitEffect(
            "arms hanging still at the sides",
            {
                "arm": ("*", 0.08),
                "elbow_swing": ("*", 0.3),
            },
        ),
    },
    "style": {
        "none": GaitEffect(
            "reference",
        ),
        "hip_sway": GaitEffect(
            (
                "Troje 2002 (the female end of the sway axis, exaggerated): pelvis lateral sway "
                "about 1.8x, more list and rotation, feet placed on a line"
            ),
            {
                "sway": ("*", 1.8),
                "list": ("*", 1.6),
                "rot": ("*", 1.4),
                "step_width": ("*", 0.5),
            },
        ),
        "swagger": GaitEffect(
            (
                "loose, rolling walk: more shoulder/pelvic rotation and sway, wide arm swing "
                "held out from the body, a little slower, head up"
            ),
            {
                "rot": ("*", 1.6),
                "sway": ("*", 1.4),
                "arm": ("*", 1.3),
                "abduct": ("+", 8.0),
                "step_width": ("*", 1.3),
                "speed": ("*", 0.95),
                "head": ("+", -4.0),
                "lean": ("+", -2.0),
            },
        ),
        "marching": GaitEffect(
            (
                "high knee lift (hip flexion about +20 degrees in late swing), rigid straight "
                "arms swinging wide, upright trunk, regular timing"
            ),
            {
                "hip_lift": ("+", 20.0),
                "knee_swing": ("*", 1.25),
                "arm": ("*", 1.4),
                "elbow": ("+", -10.0),
                "elbow_swing": ("*", 0.15),
                "lean": ("+", -2.0),
                "head": ("+", -3.0),
            },
        ),
        "staggering": GaitEffect(
            (
                "clinical ataxic/drunk gait: wide base (step width about 2x), irregular lateral "
                "deviations of the path (about 8 cm), high step-to-step variability, slower"
            ),
            {
                "stagger": ("+", 0.08),
                "step_var": ("+", 0.05),
                "step_width": ("*", 2.0),
                "sway": ("*", 1.5),
                "speed": ("*", 0.8),
                "stride": ("*", 0.9),
                "abduct": ("+", 6.0),
            },
        ),
        "sneaking": GaitEffect(
            (
                "crouched knees (about 20 degrees more flexion), slow, long careful steps "
                "(low cadence), trunk and head forward, little arm swing"
            ),
            {
                "crouch": ("+", 20.0),
                "speed": ("*", 0.6),
                "stride": ("*", 1.15),
                "lean": ("+", 12.0),
                "head": ("+", -6.0),
                "arm": ("*", 0.4),
                "elbow": ("+", 20.0),
                "bounce": ("*", 0.6),
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


def apply_effect(values: dict[str, float], group: str, value: Any, intensity: float = 1.0) -> None:
    """Apply one attribute value's changes to ``values`` in place (unknown values: none).

    ``intensity`` scales the effect per walker: a ``"*"`` change by ``amount ** intensity``,
    a ``"+"`` change by ``amount * intensity`` (1.0: the tabled effect, exactly).
    """
    effect = GAIT_EFFECTS.get(group, {}).get(str(value))
    if effect is None:
        return
    for name, (op, amount) in effect.changes.items():
        if op == "*":
            values[name] *= amount if intensity == 1.0 else amount**intensity
        else:
            values[name] += amount if intensity == 1.0 else amount * intensity


def pace_speed_factor(pace: Any) -> float:
    """The speed multiplier of a pace value alone (1.0 when it changes no speed)."""
    effect = GAIT_EFFECTS["pace"].get(str(pace))
    if effect is None or "speed" not in effect.changes:
        return 1.0
    return effect.changes["speed"][1]
