"""Generated text that names nothing the index can search by (training negatives).

The query head reads *some* value out of any text, so on its own it cannot tell a walk
description from "the quarterly earnings beat expectations". :mod:`understanding` refits the
head with these texts labelled "not named" in every group. Every source here is generated
from small tables by seeded templates (no list of test queries):

- ``everyday``: sentences from other domains (finance, cooking, weather, sport, software,
  travel, science, ...), each a subject-verb-object frame with its own word lists;
- ``question``: questions, requests and fragments about everyday things ("how do I renew
  a visa", "the pharmacy near me");
- ``salad``: random runs of those sources' words;
- ``gibberish``: random letter strings, pronounceable nonsense and keyboard-row mashes;
- ``numbers``: integers, prices, dates, times, phone-like and code-like strings;
- ``emoji``: runs of emoji, alone or with punctuation;
- ``adjacent``: walking-adjacent text the vocabulary cannot search by: colours, garments,
  materials, clothing brands, hair, moods without a group, weather and places, said of a
  neutral "person";
- ``activity``: a person doing something other than walking ("someone reading a newspaper on
  a bench"): the index holds walks, so another activity is not something it can search by;
- ``trait``: things about a person that no walk shows and no group names: professions,
  features, tastes, origins ("a plumber", "a person with freckles").

:func:`clutter_phrase` writes the same unsearchable details as phrases to insert into real
captions, so the head also learns to ignore them inside a query it does understand ("a woman
in a red coat walking fast" names gender and pace, not "red coat").

The *held-out* off-topic set (``model/data/heldout_offtopic.txt``) is written by hand,
separately; nothing here reads it.
"""

from __future__ import annotations

import random
import re
import string

_DOMAINS: dict[str, tuple[list[str], list[str], list[str]]] = {
    "finance": (
        [
            "the central bank",
            "our revenue",
            "the stock market",
            "the company",
            "investors",
            "the bond yield",
            "the startup",
        ],
        ["raised", "reported", "cut", "missed", "doubled", "announced", "forecast"],
        [
            "interest rates",
            "its annual profit",
            "the dividend",
            "a new funding round",
            "the budget deficit",
            "record losses",
            "its share price",
        ],
    ),
    "cooking": (
        ["the recipe", "my grandmother", "the chef", "this sauce", "the oven", "the bakery"],
        ["needs", "uses", "calls for", "burned", "serves", "mixes"],
        [
            "two cups of flour",
            "fresh basil",
            "a pinch of salt",
            "the chocolate cake",
            "roasted garlic",
            "sourdough bread",
            "a bowl of soup",
        ],
    ),
    "weather": (
        ["the forecast", "the storm", "a cold front", "the heatwave", "the meteorologist"],
        ["predicts", "brought", "will bring", "warned about", "delayed"],
        [
            "heavy snowfall",
            "thunder tonight",
            "clear skies",
            "strong winds",
            "a week of rain",
            "freezing temperatures",
        ],
    ),
    "sport": (
        ["the home team", "the goalkeeper", "our coach", "the champion", "the referee"],
        ["won", "lost", "scored", "cancelled", "signed", "celebrated"],
        [
            "the final match",
            "three goals",
            "a penalty",
            "the league title",
            "a new contract",
            "the tournament",
        ],
    ),
    "software": (
        ["the server", "this function", "the compiler", "the database", "our build", "the update"],
        ["crashed on", "returns", "fixed", "throws", "deployed", "optimised"],
        [
            "a null pointer",
            "the login page",
            "version two",
            "a memory leak",
            "the cache",
            "an empty list",
        ],
    ),
    "travel": (
        ["the flight", "our hotel", "the train to Paris", "the museum", "the ferry"],
        ["was delayed by", "offers", "closes at", "includes", "departs after"],
        [
            "two hours",
            "free breakfast",
            "six in the evening",
            "a guided tour",
            "a sea view",
            "the holidays",
        ],
    ),
    "science": (
        ["the experiment", "the telescope", "researchers", "the vaccine", "the enzyme"],
        ["measured", "discovered", "confirmed", "produced", "detected"],
        [
            "a new planet",
            "higher pressure",
            "the protein structure",
            "gravitational waves",
            "an immune response",
            "the reaction rate",
        ],
    ),
    "home": (
        ["the landlord", "my neighbour", "the plumber", "the kitchen tap", "the cat"],
        ["repaired", "painted", "knocked over", "ordered", "replaced"],
        [
            "the broken window",
            "a new sofa",
            "the garden fence",
            "the light bulb",
            "the washing machine",
            "a vase of flowers",
        ],
    ),
    "school": (
        ["the teacher", "my essay", "the exam", "the library", "the principal"],
        ["graded", "covers", "extended", "postponed", "requires"],
        [
            "chapter four",
            "the homework",
            "algebra",
            "the deadline",
            "a reading list",
            "the history test",
        ],
    ),
    "politics": (
        ["the senate", "the minister", "voters", "the mayor", "parliament"],
        ["approved", "rejected", "debated", "proposed", "vetoed"],
        [
            "the new tax law",
            "the budget",
            "a referendum",
            "the trade agreement",
            "an election reform",
        ],
    ),
}
_TIMES = ["", "", "", " yesterday", " last week", " this morning", " again", " in 2019",
          " on Monday", " next year"]  # fmt: skip
_EVERYDAY_FRAMES = ["{s} {v} {o}{t}", "{S} {v} {o}{t}.", "did {s} really say that it {v} {o}?",
                    "apparently {s} {v} {o}{t}", "news: {s} {v} {o}{t}"]  # fmt: skip
_KEYBOARD_ROWS = ["qwertyuiop", "asdfghjkl", "zxcvbnm", "1234567890"]
_EMOJI = list("😀😂🥲😍🤔😴😡👍👎🙏🔥💯🎉🍕🍔☕🍺🐶🐱🌧️⚽🚗✈️💡📱💻❤️⭐🌈🎵")
_NUMBER_FORMS = ["{i}", "{i}{j}", "{f}", "${f}", "{d}/{m}/20{y}", "{h}:{mi}", "+1 {i}{j}",
                 "#{i}", "{i} {j} {k}", "v{i}.{j}", "{i}%", "room {i}", "id {i}{j}{k}"]  # fmt: skip

# Walking-adjacent details this vocabulary has no group for.
COLOURS = ["red", "blue", "green", "yellow", "black", "white", "purple", "orange", "pink",
           "grey", "brown", "navy", "beige", "turquoise"]  # fmt: skip
GARMENTS = ["coat", "jacket", "shirt", "hoodie", "dress", "skirt", "scarf", "hat", "cap",
            "jeans", "sweater", "raincoat", "t-shirt", "uniform", "suit", "vest",
            "gloves"]  # fmt: skip
BRANDS = ["Gucci", "Zara", "Levi's", "Prada", "H&M", "Uniqlo", "Patagonia", "Ralph Lauren",
          "Tommy Hilfiger", "Armani", "Lacoste", "Calvin Klein"]  # fmt: skip
_HAIR = ["blonde hair", "curly hair", "a ponytail", "a shaved head", "long hair", "a beard",
         "dreadlocks", "red hair", "a moustache", "short hair"]  # fmt: skip
_ACCESSORIES = ["sunglasses", "glasses", "an umbrella", "a necklace", "a watch", "earrings",
                "a tattoo", "a scarf", "a face mask", "headphones"]  # fmt: skip
# Moods with no group: the emotion group names neutral/sad/happy/angry/proud/fearful and
# energy tired/lively/confident, so none of those (nor their synonyms: "cheerful",
# "nervous", "scared", "excited", ...) may be here.
_MOODS = ["bored", "grumpy", "surprised", "lonely", "friendly", "jealous", "curious",
          "polite", "hungry", "sleepless", "thoughtful", "puzzled", "talkative",
          "distracted", "confused", "sceptical", "nostalgic", "homesick", "suspicious",
          "shocked", "envious", "sentimental", "forgetful", "stubborn", "generous",
          "clever", "honest", "romantic"]  # fmt: skip
_PLACES = ["in the rain", "in a park", "at the station", "near the beach", "in a shopping mall",
           "on a bridge", "under the trees", "at night", "in the snow", "in a crowd"]  # fmt: skip
_MATERIALS = ["cashmere", "leather", "denim", "silk", "corduroy", "linen", "suede", "tweed",
              "knitted", "waterproof", "pinstriped", "checked", "floral", "polka-dot"]  # fmt: skip
_NEUTRAL_NOUNS = ["person", "someone", "somebody", "a pedestrian", "an individual", "a figure"]
_ADJACENT_FRAMES = [
    "{n} in a {c} {g}",
    "{n} wearing a {c} {g}",
    "{n} dressed in {c}",
    "{n} wearing {b}",
    "{n} in a {b} {g}",
    "{n} with {h}",
    "{n} with {x}",
    "a {m} {bare}",
    "{n} who looks {m}",
    "{n} {p}",
    "{c} {g}",
    "{b}",
    "{c}",
    "a {c} {g} from {b}",
    "{n} standing {p}",
    "{n} in {c} {g} {p}",
    "{n} in a {mat} {g}",
    "{n} wearing {mat} {g}s",
    "a {mat} {g}",
]
# Clutter phrases put inside real captions (same details as "adjacent", other frames).
_CLUTTER_FRAMES = ["in a {c} {g}", "wearing a {c} {g}", "in {b} clothes", "with {h}",
                   "with {x}", "{p}", "dressed in {c}", "wearing {b}"]  # fmt: skip


PARTS = ("train", "validation")


class PartRandom(random.Random):
    """A seeded generator that draws the words of one part of every word list: ``"train"``
    (three items in four) or ``"validation"`` (the rest). Thresholds chosen on validation
    negatives then meet words the head never saw, as held-out off-topic text will."""

    def __init__(self, seed: object, part: str = "train") -> None:
        if part not in PARTS:
            raise ValueError(f"part must be one of {PARTS}, not {part!r}")
        super().__init__(str(seed))
        self.part = part


def word_part(items: list[str] | tuple[str, ...], part: str) -> list[str]:
    """The items of a word list that belong to ``part`` (by position; lists of fewer than
    four items are shared)."""
    if len(items) < 4:
        return list(items)
    return [x for i, x in enumerate(items) if (i % 4 == 3) == (part == "validation")]


def _w(rng: random.Random, items: list[str] | tuple[str, ...]) -> str:
    """A word of ``rng``'s part of ``items`` (a plain ``random.Random`` draws from the
    training part)."""
    return rng.choice(word_part(items, getattr(rng, "part", "train")))


def _articles(text: str) -> str:
    """'a orange coat' -> 'an orange coat'."""
    return re.sub(r"\ba ([aeiouAEIOU])", r"an \1", text)


def everyday(rng: random.Random) -> str:
    subjects, verbs, objects = _DOMAINS[rng.choice(sorted(_DOMAINS))]
    s = _w(rng, subjects)
    text = rng.choice(_EVERYDAY_FRAMES).format(
        s=s, S=s[0].upper() + s[1:], v=_w(rng, verbs), o=_w(rng, objects),
        t=rng.choice(_TIMES),
    )  # fmt: skip
    return text


# Questions, requests and fragments about everyday things (the form of many typed queries).
_THINGS = ["the pharmacy", "a mortgage", "my laptop", "the invoice", "a visa", "the recipe",
           "a dentist", "the train timetable", "my password", "a birthday cake", "the rent",
           "a good novel", "the vaccine", "a used car", "the printer", "this equation",
           "the weekend", "a hotel room", "the garden", "my tax return", "a spreadsheet",
           "the playlist", "a wedding speech", "the museum", "an email", "the electricity bill",
           "a flight", "the planet Mars", "a cover letter", "the thermostat", "pancakes",
           "the meeting notes", "a houseplant", "the lottery", "a podcast", "the moon",
           "a job interview", "the football score", "an apartment", "the history exam"]  # fmt: skip
_ACTIONS = ["fix", "book", "cancel", "cook", "renew", "explain", "compare", "translate", "buy",
            "sell", "paint", "install", "clean", "repair", "schedule", "calculate", "water",
            "write", "download", "summarise", "rent", "bake", "order", "pay"]  # fmt: skip
_QUESTION_FRAMES = ["how do I {a} {t}", "how to {a} {t}", "what is {t}", "where can I {a} {t}?",
                    "why is {t} so expensive", "when does {t} open", "can you {a} {t}",
                    "please {a} {t}", "remind me to {a} {t}", "{t} near me", "best way to {a} {t}",
                    "is {t} worth it?", "I need to {a} {t} today", "help me {a} {t}",
                    "cheapest {t}", "{t} opening hours", "who can {a} {t}?", "{t}"]  # fmt: skip


def question(rng: random.Random) -> str:
    return rng.choice(_QUESTION_FRAMES).format(a=_w(rng, _ACTIONS), t=_w(rng, _THINGS))


def word_salad(rng: random.Random) -> str:
    """Random runs of the other sources' words: fluent-looking text with no walk in it."""
    pool = sorted({w for table in _DOMAINS.values() for part in table for phrase in part
                   for w in phrase.split()} | {w for t in _THINGS for w in t.split()}
                  | set(_ACTIONS))  # fmt: skip
    return " ".join(_w(rng, pool) for _ in range(rng.randint(1, 6)))


def gibberish(rng: random.Random) -> str:
    words = []
    for _ in range(rng.choice([1, 1, 2, 2, 3])):
        kind = rng.random()
        if kind < 0.35:  # random letters
            word = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9)))
        elif kind < 0.65:  # a run along a keyboard row
            row = rng.choice(_KEYBOARD_ROWS[:3])
            start = rng.randint(0, len(row) - 2)
            word = row[start : start + rng.randint(2, len(row) - start)]
            if rng.random() < 0.3:
                word = word[::-1]
        else:  # pronounceable nonsense
            cons, vows = "bcdfghjklmnprstvwxz", "aeiouy"
            word = "".join(rng.choice(cons) + rng.choice(vows) for _ in range(rng.randint(1, 4)))
        if rng.random() < 0.15:
            word = word.upper()
        words.append(word)
    sep = rng.choice([" ", " ", " ", "-", "", ", "])
    return sep.join(words)


def numbers(rng: random.Random) -> str:
    r = rng.randint
    return rng.choice(_NUMBER_FORMS).format(
        i=r(0, 9999), j=r(0, 999), k=r(0, 99), f=f"{r(0, 999)}.{r(0, 99):02d}", d=r(1, 28),
        m=r(1, 12), y=f"{r(0, 30):02d}", h=r(0, 23), mi=f"{r(0, 59):02d}",
    )  # fmt: skip


def emoji(rng: random.Random) -> str:
    text = "".join(_w(rng, _EMOJI) for _ in range(rng.randint(1, 5)))
    return text + rng.choice(["", "", "!", "?", "!!!", " lol"])


def _details(rng: random.Random) -> dict[str, str]:
    return {
        "c": _w(rng, COLOURS), "g": _w(rng, GARMENTS), "b": _w(rng, BRANDS),
        "h": _w(rng, _HAIR), "x": _w(rng, _ACCESSORIES), "m": _w(rng, _MOODS),
        "p": _w(rng, _PLACES), "mat": _w(rng, _MATERIALS),
    }  # fmt: skip


def adjacent(rng: random.Random) -> str:
    d = _details(rng)
    noun = rng.choice(_NEUTRAL_NOUNS)
    bare = noun.split()[-1] if noun.startswith(("a ", "an ")) else "person"
    return _articles(rng.choice(_ADJACENT_FRAMES).format(n=noun, bare=bare, **d))


# Activities that are not walking (none may be a pace, step or style of the vocabulary).
_ACTIVITIES = ["sitting on a low wall", "reading a newspaper", "riding a scooter", "swimming laps",
               "cooking dinner", "playing the guitar", "typing on a laptop", "painting a fence",
               "lifting weights", "dozing in a hammock", "eating a sandwich",
               "drinking coffee", "tying a shoelace", "skiing down a slope", "driving a car",
               "doing yoga", "watering the plants", "playing chess", "fishing by the lake",
               "singing in a choir", "juggling three balls", "kneeling in the garden",
               "lying on the grass", "skateboarding", "rowing a boat", "knitting a scarf",
               "hammering a nail", "sweeping the floor", "waiting for the bus",
               "standing in a queue", "washing the dishes", "feeding the ducks",
               "throwing a frisbee", "building a sandcastle", "ironing a shirt",
               "playing tennis", "giving a speech", "taking a nap", "writing a letter",
               "repairing a bike", "baking bread", "surfing a wave", "shopping for groceries",
               "mowing the lawn", "stretching after a workout", "playing the piano"]  # fmt: skip
_ACTIVITY_FRAMES = ["{n} {a}", "{n} who is {a}", "{n} {a} {p}", "{a}", "{a} {p}",
                    "a video of {n} {a}", "find {n} {a}", "{n} busy {a}"]  # fmt: skip
# Things no walk shows and no group names (no age, gender or build word among them).
_PROFESSIONS = ["carpenter", "lawyer", "accountant", "firefighter", "chef", "pilot", "farmer",
                "librarian", "surveyor", "architect", "musician", "nurse", "electrician",
                "journalist", "banker", "programmer", "jeweller", "florist", "mechanic",
                "tour guide"]  # fmt: skip
_FEATURES = ["rosy cheeks", "blue eyes", "a sunburn", "a scar on the cheek", "big ears",
             "a pierced eyebrow", "a gold tooth", "dimples", "a loud voice", "green eyes",
             "a birthmark", "painted nails"]  # fmt: skip
_TASTES = ["likes jazz", "speaks Portuguese", "was born in March", "plays the violin",
           "collects stamps", "owns two cats", "drinks no coffee", "reads science fiction",
           "lives downtown", "works night shifts", "supports the local team",
           "is vegetarian", "grew up by the sea", "has a driving licence"]  # fmt: skip
_TRAIT_FRAMES = ["a {j}", "an off-duty {j}", "{n} who works as a {j}", "{n} with {f}",
                 "{n} who {t}", "someone who {t}", "a {j} with {f}", "a {j} who {t}",
                 "{n} with {f} who {t}"]  # fmt: skip


def activity(rng: random.Random) -> str:
    text = rng.choice(_ACTIVITY_FRAMES).format(
        n=rng.choice(_NEUTRAL_NOUNS), a=_w(rng, _ACTIVITIES), p=_w(rng, _PLACES)
    )
    return _articles(text)


def trait(rng: random.Random) -> str:
    text = rng.choice(_TRAIT_FRAMES).format(
        n=rng.choice(_NEUTRAL_NOUNS), j=_w(rng, _PROFESSIONS), f=_w(rng, _FEATURES),
        t=_w(rng, _TASTES),
    )  # fmt: skip
    return _articles(text)


def clutter_phrase(rng: random.Random) -> str:
    """An unsearchable detail ("in a red coat", "with sunglasses") to insert in a caption."""
    return _articles(rng.choice(_CLUTTER_FRAMES).format(**_details(rng)))


SOURCES = {
    "everyday": everyday,
    "gibberish": gibberish,
    "numbers": numbers,
    "emoji": emoji,
    "adjacent": adjacent,
    "question": question,
    "salad": word_salad,
    "activity": activity,
    "trait": trait,
}
# Share of each source in a negative set (more of the kinds that look most like queries).
WEIGHTS = {
    "everyday": 0.16,
    "question": 0.12,
    "salad": 0.08,
    "gibberish": 0.12,
    "numbers": 0.06,
    "emoji": 0.04,
    "adjacent": 0.24,
    "activity": 0.1,
    "trait": 0.08,
}


def generate_negatives(n: int, seed: int = 0, part: str = "train") -> list[tuple[str, str]]:
    """``n`` distinct ``(source, text)`` negatives, deterministic for a seed, drawn from the
    ``part`` of every word list (see :class:`PartRandom`)."""
    rng = PartRandom(f"negatives:{seed}", part)
    names = list(WEIGHTS)
    out: dict[str, str] = {}
    for _ in range(n * 20):
        if len(out) >= n:
            break
        source = rng.choices(names, weights=[WEIGHTS[k] for k in names])[0]
        text = SOURCES[source](rng).strip()
        if text and text not in out:
            out[text] = source
    return [(source, text) for text, source in out.items()]
