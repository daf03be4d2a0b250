"""Template describers: attribute sets in, varied natural English out.

Two phrasing families that share no template and (almost) no phrase:

* the **training** family writes the descriptions stored with each sequence (several per
  sequence: random attribute subsets, random order, synonyms, many sentence frames);
* the **held-out** family writes evaluation queries only, so an evaluation never sees a
  training sentence (the test suite checks this on a generated gallery).

Also here, for the model engineer: :func:`attribute_phrases` (English phrases for one
attribute value) and :func:`label_descriptions` (a free label such as "limping" expanded
into sentences, for zero-shot prototypes), and :func:`describe_gallery` which rewrites the
descriptions of a gallery directory atomically.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

# --- vocabulary ------------------------------------------------------------------------------
# Nouns by (gender, age); None means the attribute is not mentioned.
_NOUNS_TRAIN: dict[tuple[str | None, str | None], list[str]] = {
    ("male", None): ["man", "guy"],
    ("female", None): ["woman", "lady"],
    (None, None): ["person", "individual", "figure"],
    ("male", "child"): ["boy", "little boy"],
    ("female", "child"): ["girl", "little girl"],
    (None, "child"): ["child", "kid"],
    ("male", "young"): ["young man", "young guy"],
    ("female", "young"): ["young woman", "young lady"],
    (None, "young"): ["young person", "young adult"],
    ("male", "adult"): ["adult man", "grown man"],
    ("female", "adult"): ["adult woman", "grown woman"],
    (None, "adult"): ["adult", "grown-up person"],
    ("male", "elderly"): ["elderly man", "old man"],
    ("female", "elderly"): ["elderly woman", "old woman"],
    (None, "elderly"): ["elderly person", "old person"],
}
_NOUNS_HELDOUT: dict[tuple[str | None, str | None], list[str]] = {
    ("male", None): ["male pedestrian", "gentleman"],
    ("female", None): ["female pedestrian", "female walker"],
    (None, None): ["pedestrian", "walker"],
    ("male", "child"): ["male child", "schoolboy"],
    ("female", "child"): ["female child", "schoolgirl"],
    (None, "child"): ["youngster", "young child"],
    ("male", "young"): ["teenage boy", "male student"],
    ("female", "young"): ["teenage girl", "female student"],
    (None, "young"): ["teenager", "student"],
    ("male", "adult"): ["middle-aged man", "male adult"],
    ("female", "adult"): ["middle-aged woman", "female adult"],
    (None, "adult"): ["middle-aged pedestrian", "grown adult"],
    ("male", "elderly"): ["senior man", "grandfather"],
    ("female", "elderly"): ["senior woman", "grandmother"],
    (None, "elderly"): ["senior citizen", "aged pedestrian"],
}

# Phrases per (group, value): "adj" goes before the noun, "verb" replaces "walking", "mod"
# follows the verb. Each family has its own lists.
_Phr = dict[str, list[str]]
_TRAIN: dict[tuple[str, str], _Phr] = {
    ("build", "slim"): {"adj": ["slim", "thin"]},
    ("build", "average"): {"adj": ["average-build", "medium-build"]},
    ("build", "heavy"): {"adj": ["heavy", "heavyset", "overweight"]},
    ("pace", "slow"): {"mod": ["slowly", "at a slow pace", "unhurriedly"]},
    ("pace", "normal"): {"mod": ["at a normal pace", "at an ordinary pace", "at a steady pace"]},
    ("pace", "brisk"): {"mod": ["briskly", "quickly", "at a fast pace"]},
    ("pace", "running"): {"verb": ["running", "jogging"]},
    ("footwear", "flat"): {"mod": ["in flat shoes", "wearing sneakers", "in trainers"]},
    ("footwear", "heels"): {"mod": ["in high heels", "wearing heels", "in high-heeled shoes"]},
    ("footwear", "boots"): {"mod": ["in boots", "wearing boots", "in sturdy boots"]},
    ("carrying", "nothing"): {"mod": ["empty-handed", "carrying nothing", "with free hands"]},
    ("carrying", "handbag"): {
        "mod": ["carrying a handbag", "with a handbag", "with a purse on one arm"]
    },
    ("carrying", "backpack"): {
        "mod": ["carrying a backpack", "with a backpack", "wearing a rucksack"]
    },
    ("carrying", "suitcase"): {
        "mod": ["pulling a suitcase", "dragging a rolling suitcase", "with a trolley bag"]
    },
    ("carrying", "phone_call"): {
        "mod": ["talking on the phone", "on a phone call", "holding a phone to the ear"]
    },
    ("carrying", "texting"): {"mod": ["texting", "looking down at a phone", "typing on a phone"]},
    ("carrying", "hands_in_pockets"): {
        "mod": ["with hands in pockets", "with both hands in the pockets", "hands in pockets"]
    },
    ("impairment", "none"): {"mod": ["with a normal gait", "without any impairment"]},
    ("impairment", "limp"): {"verb": ["limping"], "mod": ["with a limp", "favouring one leg"]},
    ("impairment", "cane"): {"mod": ["with a cane", "using a walking stick", "leaning on a cane"]},
    ("energy", "neutral"): {"adj": ["calm", "relaxed"]},
    ("energy", "tired"): {"adj": ["tired", "weary"], "mod": ["wearily", "low on energy"]},
    ("energy", "lively"): {
        "adj": ["lively", "energetic"],
        "mod": ["energetically", "full of energy"],
    },
    ("energy", "confident"): {
        "adj": ["confident", "self-assured"],
        "mod": ["confidently", "with a confident stride"],
    },
    ("emotion", "neutral"): {
        "adj": ["unemotional"],
        "mod": ["showing no emotion", "with a neutral mood"],
    },
    ("emotion", "sad"): {
        "adj": ["sad", "dejected"],
        "mod": ["with a sad walk", "looking down in the dumps"],
    },
    ("emotion", "happy"): {"adj": ["happy", "glad"], "mod": ["happily", "with a happy walk"]},
    ("emotion", "angry"): {
        "adj": ["angry", "hot-tempered"],
        "mod": ["angrily", "with an angry walk"],
    },
    ("emotion", "proud"): {"adj": ["proud"], "mod": ["proudly", "with a proud walk"]},
    ("emotion", "fearful"): {
        "adj": ["fearful", "frightened"],
        "mod": ["fearfully", "looking afraid"],
    },
    ("posture", "normal"): {"mod": ["with normal posture", "with an ordinary posture"]},
    ("posture", "hunched"): {"adj": ["hunched"], "mod": ["hunched over", "bent forward"]},
    ("posture", "upright"): {
        "adj": ["upright"],
        "mod": ["standing tall", "with an upright posture"],
    },
    ("posture", "head_down"): {
        "mod": ["head down", "looking at the ground", "with the head lowered"]
    },
    ("step", "normal"): {"mod": ["with normal steps", "with regular steps"]},
    ("step", "shuffling"): {"verb": ["shuffling"], "mod": ["dragging their feet"]},
    ("step", "stomping"): {
        "verb": ["stomping"],
        "mod": ["with loud footfalls", "stamping their feet"],
    },
    ("step", "bouncy"): {
        "verb": ["bouncing along"],
        "mod": ["with a bouncy step", "with a spring in their step"],
    },
    ("step", "long_strides"): {
        "verb": ["striding"],
        "mod": ["with long strides", "taking long steps"],
    },
    ("step", "short_steps"): {
        "mod": ["with short steps", "taking small steps", "with little steps"]
    },
    ("step", "on_toes"): {"verb": ["tiptoeing"], "mod": ["on their toes", "on tiptoe"]},
    ("arm_swing", "normal"): {"mod": ["swinging the arms normally", "with a normal arm swing"]},
    ("arm_swing", "wide"): {"mod": ["swinging the arms widely", "with big arm swings"]},
    ("arm_swing", "stiff"): {"mod": ["with stiff arms", "with rigid arms"]},
    ("arm_swing", "none"): {"mod": ["without swinging the arms", "with arms held still"]},
    ("style", "none"): {"mod": ["with no particular style", "in a plain manner"]},
    ("style", "hip_sway"): {"mod": ["swaying the hips", "with swaying hips"]},
    ("style", "swagger"): {"verb": ["swaggering"], "mod": ["with a swagger"]},
    ("style", "marching"): {"verb": ["marching"], "mod": ["like a soldier on parade"]},
    ("style", "staggering"): {"verb": ["staggering", "stumbling"], "mod": ["unsteadily"]},
    ("style", "sneaking"): {"verb": ["sneaking", "creeping"], "mod": ["stealthily"]},
    ("view", "front"): {"mod": ["seen from the front", "facing the camera", "towards the camera"]},
    ("view", "back"): {
        "mod": ["seen from behind", "away from the camera", "with their back to us"]
    },
    ("view", "side"): {"mod": ["seen from the side", "in profile", "viewed side-on"]},
    ("view", "oblique"): {"mod": ["seen at an angle", "from a diagonal view", "viewed obliquely"]},
}
_HELDOUT: dict[tuple[str, str], _Phr] = {
    ("build", "slim"): {"adj": ["slender", "skinny", "lean"]},
    ("build", "average"): {"adj": ["normally built", "regular-sized"]},
    ("build", "heavy"): {"adj": ["stocky", "large", "chubby"]},
    ("pace", "slow"): {"mod": ["at a leisurely pace", "without hurrying", "at a sluggish speed"]},
    ("pace", "normal"): {"mod": ["at an average speed", "at a regular speed"]},
    ("pace", "brisk"): {"mod": ["hurriedly", "at a quick pace", "rapidly"]},
    ("pace", "running"): {"verb": ["sprinting", "dashing", "racing along"]},
    ("footwear", "flat"): {"mod": ["in flats", "in running shoes", "in loafers"]},
    ("footwear", "heels"): {"mod": ["in stilettos", "wearing pumps", "in heeled shoes"]},
    ("footwear", "boots"): {"mod": ["in hiking boots", "with work boots on", "in combat boots"]},
    ("carrying", "nothing"): {"mod": ["not carrying anything", "with nothing in hand"]},
    ("carrying", "handbag"): {
        "mod": ["holding a shoulder bag", "with a bag on one arm", "clutching a purse"]
    },
    ("carrying", "backpack"): {"mod": ["with a schoolbag on the back", "wearing a knapsack"]},
    ("carrying", "suitcase"): {"mod": ["towing luggage", "wheeling a travel case"]},
    ("carrying", "phone_call"): {"mod": ["making a call", "chatting on a mobile"]},
    ("carrying", "texting"): {"mod": ["reading a smartphone", "staring at a mobile screen"]},
    ("carrying", "hands_in_pockets"): {"mod": ["hands tucked in pockets", "with pocketed hands"]},
    ("impairment", "none"): {"mod": ["with a healthy gait", "with an even gait"]},
    ("impairment", "limp"): {
        "verb": ["hobbling"],
        "mod": ["with an injured leg", "with an uneven, lame gait"],
    },
    ("impairment", "cane"): {"mod": ["aided by a stick", "with the help of a walking aid"]},
    ("energy", "neutral"): {"adj": ["composed", "collected"]},
    ("energy", "tired"): {
        "adj": ["worn-out", "fatigued", "sleepy"],
        "mod": ["with drooping eyelids", "lacking energy"],
    },
    ("energy", "lively"): {"adj": ["vivacious", "animated"], "mod": ["full of life"]},
    ("energy", "confident"): {
        "adj": ["assertive", "self-possessed"],
        "mod": ["with poise", "with assurance"],
    },
    ("emotion", "neutral"): {
        "adj": ["impassive"],
        "mod": ["with a blank expression", "in an even mood"],
    },
    ("emotion", "sad"): {
        "adj": ["unhappy", "sorrowful"],
        "mod": ["looking heartbroken", "with a grieving look"],
    },
    ("emotion", "happy"): {
        "adj": ["delighted", "smiling"],
        "mod": ["in a good mood", "full of joy"],
    },
    ("emotion", "angry"): {"adj": ["mad", "infuriated"], "mod": ["in a rage", "looking cross"]},
    ("emotion", "proud"): {
        "adj": ["haughty", "dignified"],
        "mod": ["with pride", "chest out with pride"],
    },
    ("emotion", "fearful"): {
        "adj": ["scared", "terrified"],
        "mod": ["full of fear", "afraid of something"],
    },
    ("posture", "normal"): {"mod": ["with a regular posture", "holding themselves normally"]},
    ("posture", "hunched"): {
        "adj": ["stooped"],
        "mod": ["with rounded shoulders", "stooping forward"],
    },
    ("posture", "upright"): {"mod": ["with a straight back", "with an erect posture"]},
    ("posture", "head_down"): {
        "mod": ["with eyes on the floor", "gazing downward", "chin on the chest"]
    },
    ("step", "normal"): {"mod": ["with an average step", "with usual footsteps"]},
    ("step", "shuffling"): {"mod": ["barely lifting the feet", "sliding the feet along"]},
    ("step", "stomping"): {"mod": ["with loud, pounding steps", "pounding the ground"]},
    ("step", "bouncy"): {
        "verb": ["bobbing along"],
        "mod": ["springing with each step", "with a springy gait"],
    },
    ("step", "long_strides"): {
        "mod": ["with big strides", "with an extended stride", "covering ground with each step"]
    },
    ("step", "short_steps"): {
        "mod": ["with tiny steps", "with a short stride", "taking little mincing steps"]
    },
    ("step", "on_toes"): {"mod": ["on the balls of the feet", "up on the tips of the feet"]},
    ("arm_swing", "normal"): {"mod": ["with the usual arm movement", "arms moving naturally"]},
    ("arm_swing", "wide"): {"mod": ["with arms swinging high", "pumping the arms"]},
    ("arm_swing", "stiff"): {"mod": ["with tense arms", "with robotic arm movements"]},
    ("arm_swing", "none"): {"mod": ["with motionless arms", "keeping the arms by the sides"]},
    ("style", "none"): {"mod": ["in no special manner", "with nothing unusual about the walk"]},
    ("style", "hip_sway"): {"mod": ["with a hip-swinging walk", "hips rolling from side to side"]},
    ("style", "swagger"): {"mod": ["with a cocky walk", "with a showy gait"]},
    ("style", "marching"): {"mod": ["in military step", "with a soldier's gait"]},
    ("style", "staggering"): {"verb": ["reeling", "lurching"], "mod": ["like a drunk"]},
    ("style", "sneaking"): {"verb": ["prowling"], "mod": ["trying not to be seen"]},
    ("view", "front"): {"mod": ["approaching the viewer", "coming toward us"]},
    ("view", "back"): {"mod": ["moving away from us", "in rear view"]},
    ("view", "side"): {"mod": ["crossing the frame", "in side view"]},
    ("view", "oblique"): {"mod": ["in three-quarter view", "at a diagonal angle"]},
}

# The synonym family: synonyms and paraphrases of the walking-style, mood and energy values
# that neither the training nor the held-out family uses. Its queries take every other
# group's phrases, the nouns and the frames from the held-out family.
_SYNONYM: dict[tuple[str, str], _Phr] = {
    ("energy", "neutral"): {"adj": ["unruffled"]},
    ("energy", "tired"): {"adj": ["exhausted", "drained"], "mod": ["dead on their feet"]},
    ("energy", "lively"): {"adj": ["peppy", "spirited"], "mod": ["with vim"]},
    ("energy", "confident"): {"adj": ["bold", "cocksure"], "mod": ["with aplomb"]},
    ("emotion", "neutral"): {"adj": ["even-tempered"]},
    ("emotion", "sad"): {"adj": ["downcast", "glum", "melancholy"], "mod": ["with a mournful air"]},
    ("emotion", "happy"): {"adj": ["cheerful", "joyful", "jaunty"]},
    ("emotion", "angry"): {"adj": ["furious", "irate"], "mod": ["seething with anger"]},
    ("emotion", "proud"): {"adj": ["arrogant", "self-satisfied"], "mod": ["chest puffed out"]},
    ("emotion", "fearful"): {"adj": ["nervous", "skittish", "jumpy"], "mod": ["on edge"]},
    ("posture", "normal"): {"mod": ["with an everyday posture"]},
    ("posture", "hunched"): {"adj": ["round-shouldered"], "mod": ["slouching", "slumped forward"]},
    ("posture", "upright"): {"mod": ["ramrod straight", "with a poker-straight spine"]},
    ("posture", "head_down"): {"mod": ["staring at their shoes", "with a bowed head"]},
    ("step", "normal"): {"mod": ["with unremarkable steps"]},
    ("step", "shuffling"): {"verb": ["scuffing along"], "mod": ["with scraping feet"]},
    ("step", "stomping"): {"verb": ["thudding along"], "mod": ["with thunderous steps"]},
    ("step", "bouncy"): {"verb": ["bounding along"], "mod": ["with an elastic step"]},
    ("step", "long_strides"): {"verb": ["loping"], "mod": ["with lengthy paces"]},
    ("step", "short_steps"): {"verb": ["mincing along"], "mod": ["with dainty steps"]},
    ("step", "on_toes"): {"mod": ["on tippy-toes", "on pointed feet"]},
    ("arm_swing", "normal"): {"mod": ["arms swinging as usual"]},
    ("arm_swing", "wide"): {"mod": ["arms flailing", "with exaggerated arm swings"]},
    ("arm_swing", "stiff"): {"mod": ["with wooden arms", "arms like planks"]},
    ("arm_swing", "none"): {"mod": ["with arms pinned to the body", "not moving the arms"]},
    ("style", "none"): {"mod": ["in an unremarkable way"]},
    ("style", "hip_sway"): {"verb": ["sashaying"], "mod": ["with a wiggle"]},
    ("style", "swagger"): {"verb": ["strutting"], "mod": ["with a macho gait"]},
    ("style", "marching"): {"mod": ["in lockstep", "with a regimented step"]},
    ("style", "staggering"): {"verb": ["tottering", "wobbling"], "mod": ["unsteady on their feet"]},
    ("style", "sneaking"): {"verb": ["skulking", "slinking"], "mod": ["furtively"]},
}
# The groups whose values the synonym family rewords (a synonym query names one of these).
SYNONYM_GROUPS = ("energy", "emotion", "posture", "step", "arm_swing", "style")

_VERB_TRAIN = ["walking", "walking along", "strolling"]
_VERB_HELDOUT = ["moving", "making their way", "going along", "heading down the street"]

_FRAMES_TRAIN = [
    "{A} {np} {vp}.",
    "{A} {np} is {vp}.",
    "The video shows {a} {np} {vp}.",
    "Footage of {a} {np} {vp}.",
    "Here we see {a} {np} {vp}.",
    "{A} {np}, {vp}.",
    "This clip features {a} {np} {vp}.",
    "In this sequence, {a} {np} is {vp}.",
    "{A} {np} {vps}.",
    "In the clip {a} {np} {vps}.",
    "We see {a} {np} who {vps}.",
    "The recording captures {a} {np} {vp}.",
]
_FRAMES_HELDOUT = [
    "{np} {vp}",
    "find {a} {np} {vp}",
    "show me {a} {np} {vp}",
    "looking for {a} {np} {vp}",
    "{a} {np} who is {vp}",
    "{a} {np} that {vps}",
    "any {np} {vp}?",
]

_DESCRIBED = ("gender", "age", "build", "pace", "footwear", "carrying", "impairment", "energy",
              "emotion", "posture", "step", "arm_swing", "style", "view")  # fmt: skip
# Groups whose phrases come in random order between the verb (and pace) and the viewpoint.
_MIDDLE_GROUPS = ("carrying", "footwear", "energy", "build", "emotion", "posture", "arm_swing")
# Groups that may set the verb ("shuffling", "marching"): placed first so they take it.
_GAIT_GROUPS = ("step", "style")


def _join(parts: list[str], rng: random.Random) -> str:
    if len(parts) == 1:
        return parts[0]
    sep = rng.choice([", ", " "]) if len(parts) == 2 else ", "
    if len(parts) == 2 and sep == " ":
        return f"{parts[0]} and {parts[1]}"
    return sep.join(parts[:-1]) + " and " + parts[-1]


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


FAMILIES = ("training", "heldout", "synonym")
_SYNONYM_TABLE = {**_HELDOUT, **_SYNONYM}


def _tables(heldout: bool, family: str | None = None) -> tuple[dict, dict, list[str], list[str]]:
    family = family or ("heldout" if heldout else "training")
    if family == "synonym":
        return _NOUNS_HELDOUT, _SYNONYM_TABLE, _VERB_HELDOUT, _FRAMES_HELDOUT
    if family == "heldout":
        return _NOUNS_HELDOUT, _HELDOUT, _VERB_HELDOUT, _FRAMES_HELDOUT
    if family != "training":
        raise ValueError(f"unknown phrase family {family!r}; known: {FAMILIES}")
    return _NOUNS_TRAIN, _TRAIN, _VERB_TRAIN, _FRAMES_TRAIN


_FINITE = {"running": "runs", "jogging": "jogs", "hobbling": "hobbles", "moving": "moves",
           "making": "makes", "racing": "races", "dashing": "dashes", "going": "goes",
           "shuffling": "shuffles", "bouncing": "bounces", "striding": "strides",
           "tiptoeing": "tiptoes", "marching": "marches", "staggering": "staggers",
           "stumbling": "stumbles", "sneaking": "sneaks", "creeping": "creeps",
           "bobbing": "bobs", "lurching": "lurches", "reeling": "reels", "prowling": "prowls",
           "scuffing": "scuffs", "thudding": "thuds", "bounding": "bounds", "loping": "lopes",
           "mincing": "minces", "sashaying": "sashays", "strutting": "struts",
           "tottering": "totters", "wobbling": "wobbles", "skulking": "skulks",
           "slinking": "slinks", "swaggering": "swaggers", "stomping": "stomps"}  # fmt: skip


def _finite(verb_phrase: str) -> str:
    """'walking along ...' -> 'walks along ...' (third person singular)."""
    first, _, rest = verb_phrase.partition(" ")
    word = _FINITE.get(first, first[:-3] + "s" if first.endswith("ing") else first)
    return f"{word} {rest}".strip()


def compose(
    attributes: Mapping[str, Any],
    rng: random.Random,
    heldout: bool = False,
    family: str | None = None,
) -> str:
    """One sentence mentioning exactly the given attributes (in the chosen family).

    ``family`` is "training", "heldout" or "synonym" (default: from ``heldout``). Word
    order: adjectives before the noun, then the verb (a step or style verb such as
    "shuffling" takes it first), the pace right after it, the other manner phrases in
    random order, and the viewpoint last. Groups without phrases are left out.
    """
    family = family or ("heldout" if heldout else "training")
    nouns, phrases, verbs, frames = _tables(heldout, family)
    gender, age = attributes.get("gender"), attributes.get("age")
    noun = rng.choice(nouns[(gender, age)])
    adjs: list[str] = []
    pace_mods: list[str] = []
    mods: list[str] = []
    tail: list[str] = []
    verb = rng.choice(verbs)
    verb_set = False
    middle = [g for g in _MIDDLE_GROUPS if g in attributes]
    rng.shuffle(middle)
    gait = [g for g in _GAIT_GROUPS if g in attributes]
    groups = [g for g in ("pace", "impairment") if g in attributes] + gait + middle
    groups += ["view"] if "view" in attributes else []
    for group in groups:
        table = phrases.get((group, str(attributes[group])), {})
        kinds = [k for k in ("adj", "verb", "mod") if k in table]
        if not kinds:
            continue
        if verb_set and len(kinds) > 1 and "verb" in kinds:
            kinds.remove("verb")
        kind = rng.choice(kinds)
        if kind == "adj" and len(adjs) < 2:
            adjs.append(rng.choice(table["adj"]))
        elif kind == "adj":
            mods.append("looking " + rng.choice(table["adj"]))
        elif kind == "verb" and not verb_set:
            verb, verb_set = rng.choice(table["verb"]), True
        elif kind == "verb":
            mods.append("while " + rng.choice(table["verb"]))
        elif group == "pace":
            pace_mods.append(rng.choice(table["mod"]))
        elif group == "view":
            tail.append(rng.choice(table["mod"]))
        else:
            mods.append(rng.choice(table["mod"]))
    np_ = " ".join([*adjs, noun])
    vp = " ".join([verb, *pace_mods])
    if mods:
        vp += (", " if pace_mods and rng.random() < 0.5 else " ") + _join(mods, rng)
    if tail:
        vp += ", " + tail[0]
    frame = rng.choice(frames)
    text = frame.format(
        a=_article(np_),
        A=_article(np_).capitalize(),
        np=np_,
        vp=vp,
        vps=_finite(verb) + vp[len(verb) :],
    )
    text = re.sub(r"\s+", " ", text).strip()
    return text[0].upper() + text[1:] if family == "training" else text


@dataclass
class TemplateDescriber:
    """Varied descriptions of an attribute set (training family)."""

    seed: int = 0
    min_groups: int = 2

    def describe(self, attributes: Mapping[str, Any], n: int, key: str = "") -> list[str]:
        """``n`` distinct sentences, each on a random subset of the attributes."""
        rng = random.Random(zlib.crc32(f"{self.seed}:{key}:{sorted(attributes.items())}".encode()))
        names = [g for g in attributes if g in _DESCRIBED]
        out: list[str] = []
        for _ in range(n * 6):
            if len(out) >= n:
                break
            k = rng.randint(min(self.min_groups, len(names)), len(names))
            chosen = rng.sample(names, k)
            # Default values are seldom worth saying; drop most of them.
            chosen = [
                g for g in chosen
                if str(attributes[g]) not in ("nothing", "none", "neutral", "average", "flat",
                                              "normal") or rng.random() < 0.25
            ]  # fmt: skip
            text = compose({g: attributes[g] for g in chosen}, rng)
            if text not in out:
                out.append(text)
        return out


def heldout_query(attributes: Mapping[str, Any], rng: random.Random) -> str:
    """A search query in the held-out family mentioning exactly ``attributes``."""
    return compose(attributes, rng, family="heldout")


def synonym_query(attributes: Mapping[str, Any], rng: random.Random) -> str:
    """A search query in the synonym family mentioning exactly ``attributes``.

    Values of :data:`SYNONYM_GROUPS` are named by synonyms and paraphrases no other family
    uses ("glum", "scuffing along"); every other group is phrased as in the held-out family.
    """
    return compose(attributes, rng, family="synonym")


def attribute_phrases(
    group: str, value: str, heldout: bool = False, family: str | None = None
) -> list[str]:
    """Several English phrases describing one attribute value (in the chosen family)."""
    nouns, phrases, verbs, _ = _tables(heldout, family)
    if group == "gender":
        return [f"{_article(n)} {n} walking" for n in nouns[(value, None)]] + [
            f"{_article(n)} {n} walking" for age in ("young", "adult") for n in nouns[(value, age)]
        ]
    if group == "age":
        return [f"{_article(n)} {n} walking" for n in nouns[(None, value)]] + [
            f"{_article(n)} {n} walking" for g in ("male", "female") for n in nouns[(g, value)]
        ]
    table = phrases.get((group, value))
    if table is None:
        raise ValueError(f"no phrases for {group}={value}")
    noun = nouns[(None, None)][0]
    out = [f"{_article(a)} {a} {noun} walking" for a in table.get("adj", [])]
    out += [f"{_article(noun)} {noun} {v}" for v in table.get("verb", [])]
    out += [f"{_article(noun)} {noun} {verbs[0]} {m}" for m in table.get("mod", [])]
    return out


# Values too generic to recognise inside a free label ("normal", "none", "back", ...).
_GENERIC_VALUES = {"normal", "none", "nothing", "neutral", "average", "flat", "front", "back",
                   "side", "oblique", "wide"}  # fmt: skip


_PERSON_WORDS = {"man", "woman", "men", "women", "person", "people", "boy", "girl", "child",
                 "kid", "lady", "guy", "someone", "pedestrian", "adult", "teenager"}  # fmt: skip
# Free-label words that name a gender or age value.
_PERSON_VALUES = {
    "female": ("gender", "female"), "woman": ("gender", "female"), "lady": ("gender", "female"),
    "male": ("gender", "male"), "man": ("gender", "male"), "guy": ("gender", "male"),
    "child": ("age", "child"), "kid": ("age", "child"), "young": ("age", "young"),
    "elderly": ("age", "elderly"), "old": ("age", "elderly"), "senior": ("age", "elderly"),
}  # fmt: skip
_GERUND_FRAMES = [
    "a person {l}.",
    "someone {l}.",
    "a pedestrian {l}.",
    "the video shows a person {l}.",
    "a walking sequence of someone {l}.",
    "footage of a person {l}.",
    "a man {l}.",
    "a woman {l}.",
]
_NOUN_FRAMES = [
    "{A} {l} walking.",
    "a video of {a} {l}.",
    "footage of {a} {l} walking by.",
    "{A} {l} seen walking down the street.",
    "a walking sequence of {a} {l}.",
    "{A} {l} on the move.",
]
_OTHER_FRAMES = [
    "a person walking: {l}.",
    "a pedestrian, {l}.",
    "someone walking ({l}).",
    "a walking person described as {l}.",
    "footage of a person walking, {l}.",
    "{l}: a person walking.",
]


def label_descriptions(label: str, n: int = 8) -> list[str]:
    """Expand a free label ("limping", "texting while walking") into ``n`` sentences.

    Labels in the attribute vocabulary ("limping", "backpack", "female") also get that
    value's training phrases first; other labels are put into sentence frames chosen by
    their form (a gerund phrase, a phrase naming a person, or anything else).
    """
    label = " ".join(label.split())
    if not label:
        raise ValueError("empty label")
    low = label.lower()
    words = re.findall(r"[a-z]+", low)
    out: list[str] = []
    for group, value in _TRAIN:
        text = value.replace("_", " ")
        if value in _GENERIC_VALUES:
            continue
        if re.search(rf"\b{re.escape(text)}(s|ing|ed)?\b", low):
            out += attribute_phrases(group, value)
    for word in words:
        if word in _PERSON_VALUES and len(words) == 1:
            out += attribute_phrases(*_PERSON_VALUES[word])
    if words and words[0].endswith("ing"):
        frames, text = _GERUND_FRAMES, low
    elif any(w in _PERSON_WORDS for w in words):
        frames = _NOUN_FRAMES
        text = re.sub(r"^(a|an|the)\s+", "", low)
    else:
        frames, text = _OTHER_FRAMES, low
    article = _article(text)
    out += [f.format(l=text, a=article, A=article.capitalize()) for f in frames]
    seen: list[str] = []
    for t in out:
        t = t[0].upper() + t[1:]
        if t not in seen:
            seen.append(t)
    return seen[:n]


class Describer(Protocol):
    def describe(self, attributes: Mapping[str, Any], n: int, key: str = "") -> list[str]: ...


def describe_gallery(
    data_dir: Path | str,
    describer: Describer,
    per_sequence: int = 4,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """(Re)write ``description``/``descriptions`` of every record; returns the count."""
    from gaitsearch.model.gallery import read_metadata, write_metadata

    records = read_metadata(data_dir, strict=True)
    for i, record in enumerate(records):
        texts = describer.describe(record.attributes, per_sequence, key=record.id)
        if texts:
            record.description = texts[0]
            record.descriptions = texts
        if on_progress:
            on_progress(i + 1)
    write_metadata(data_dir, records)
    return len(records)
