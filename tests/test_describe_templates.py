"""Template describers: variety, faithfulness, held-out separation, helpers, rewriting."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
from gaitsearch.model import describe
from gaitsearch.model.attributes import ATTRIBUTES
from gaitsearch.model.describe import (
    TemplateDescriber,
    attribute_phrases,
    compose,
    describe_gallery,
    heldout_query,
    label_descriptions,
)
from gaitsearch.model.gallery import read_metadata, sequence_path
from gaitsearch.model.synth import sample_attributes, synthesize_gallery


def _has(text: str, phrase: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(phrase.lower())}(?![\w-])", text.lower()) is not None


def _family_phrases(table: dict) -> dict[tuple[str, str], list[str]]:
    """Every phrase of each value, verbs also in their finite form ("limping", "limps")."""
    out = {}
    for key, entry in table.items():
        words = [p for kind in entry.values() for p in kind]
        out[key] = words + [describe._finite(v) for v in entry.get("verb", [])]
    return out


@pytest.fixture(scope="module")
def small_gallery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("desc") / "g"
    synthesize_gallery(root, 300, seed=5)
    return root


def test_several_distinct_varied_descriptions_per_sequence() -> None:
    rng = np.random.default_rng(0)
    describer = TemplateDescriber(seed=0)
    all_texts: list[str] = []
    for i in range(50):
        texts = describer.describe(sample_attributes(rng), 4, key=f"s{i}")
        assert len(texts) == 4 and len(set(texts)) == 4
        assert all(t[0].isupper() and t.endswith(".") for t in texts)
        all_texts += texts
    # Many sentence frames and phrasings are in use.
    assert len(set(all_texts)) >= 0.95 * len(all_texts)
    openings = {" ".join(t.split()[:2]) for t in all_texts}
    assert len(openings) >= 15


def test_descriptions_are_deterministic_per_seed_and_key() -> None:
    attrs = {"gender": "male", "age": "elderly", "pace": "slow", "impairment": "cane"}
    assert TemplateDescriber(1).describe(attrs, 4, "a") == TemplateDescriber(1).describe(
        attrs, 4, "a"
    )
    assert TemplateDescriber(1).describe(attrs, 4, "a") != TemplateDescriber(2).describe(
        attrs, 4, "a"
    )


def test_descriptions_never_mention_a_wrong_value() -> None:
    """A sentence may leave an attribute out, but never states another value of it."""
    phrases = _family_phrases(describe._TRAIN)
    rng = np.random.default_rng(1)
    describer = TemplateDescriber(seed=3)
    for i in range(200):
        attrs = sample_attributes(rng)
        for text in describer.describe(attrs, 4, key=str(i)):
            for (group, value), words in phrases.items():
                if value == attrs[group]:
                    continue
                for w in words:
                    assert not _has(text, w), f"{text!r} says {group}={value} ({w!r})"


def test_each_described_value_is_recognisable() -> None:
    """With a single attribute, the sentence carries one of that value's phrases."""
    for group, values in ATTRIBUTES.items():
        if group in ("gender", "age"):
            continue
        for value in values:
            words = _family_phrases(describe._TRAIN)[(group, value)]
            for seed in range(5):
                text = compose({group: value}, random.Random(seed))
                assert any(_has(text, w) for w in words), (group, value, text)


def test_heldout_queries_never_appear_in_training_descriptions(small_gallery: Path) -> None:
    training = {t for r in read_metadata(small_gallery) for t in r.all_descriptions()}
    queries = [json.loads(line) for line in (small_gallery / "queries.jsonl").open()]
    assert len(queries) >= 20
    for q in queries:
        assert q["query"] not in training
        assert q["query"].lower() not in {t.lower().rstrip(".") for t in training}
    # No held-out phrase or noun is used by the training family at all.
    heldout = [p for ps in _family_phrases(describe._HELDOUT).values() for p in ps]
    heldout += [n for ns in describe._NOUNS_HELDOUT.values() for n in ns]
    joined = "\n".join(training)
    for phrase in heldout:
        assert not _has(joined, phrase), phrase


def test_families_share_no_phrase() -> None:
    train = {p for ps in _family_phrases(describe._TRAIN).values() for p in ps}
    held = {p for ps in _family_phrases(describe._HELDOUT).values() for p in ps}
    assert not train & held
    assert not set(describe._FRAMES_TRAIN) & set(describe._FRAMES_HELDOUT)
    train_nouns = {n for ns in describe._NOUNS_TRAIN.values() for n in ns}
    held_nouns = {n for ns in describe._NOUNS_HELDOUT.values() for n in ns}
    assert not train_nouns & held_nouns


def test_heldout_query_mentions_its_constraints() -> None:
    held = _family_phrases(describe._HELDOUT)
    rng = random.Random(0)
    for _ in range(100):
        predicate = {"pace": rng.choice(ATTRIBUTES["pace"])}
        predicate["carrying"] = rng.choice(ATTRIBUTES["carrying"])
        text = heldout_query(predicate, rng)
        for group, value in predicate.items():
            assert any(_has(text, w) for w in held[(group, value)]), (predicate, text)


@pytest.mark.parametrize("heldout", [False, True])
def test_attribute_phrases_cover_the_vocabulary(heldout: bool) -> None:
    for group, values in ATTRIBUTES.items():
        for value in values:
            phrases = attribute_phrases(group, value, heldout=heldout)
            assert len(phrases) >= 2 and len(set(phrases)) == len(phrases), (group, value)
            assert all(isinstance(p, str) and len(p) > 5 for p in phrases)
    assert any("high heels" in p for p in attribute_phrases("footwear", "heels"))
    with pytest.raises(ValueError):
        attribute_phrases("footwear", "skates")


def test_label_descriptions_expand_free_labels() -> None:
    limping = label_descriptions("limping")
    assert len(limping) == 8 and len(set(limping)) == 8
    assert all("limp" in t.lower() or "leg" in t.lower() for t in limping)
    texting = label_descriptions("texting while walking", n=4)
    assert len(texting) == 4 and all("text" in t.lower() or "phone" in t.lower() for t in texting)
    other = label_descriptions("carrying an umbrella", n=5)
    assert len(other) == 5 and all("carrying an umbrella" in t for t in other)
    # Vocabulary words are matched as words: no "back" view in "backpack", no "male" in
    # "female".
    backpack = label_descriptions("backpack")
    assert any("rucksack" in t for t in backpack)
    assert not any("behind" in t or "away from the camera" in t for t in backpack)
    female = label_descriptions("female", n=6)
    assert all(" man" not in t and "guy" not in t for t in female)
    assert any("woman" in t for t in female)
    person = label_descriptions("a man with a dog", n=3)
    assert person[0] == "A man with a dog walking."
    with pytest.raises(ValueError):
        label_descriptions("  ")


def test_describe_gallery_rewrites_descriptions_atomically(small_gallery: Path, tmp_path: Path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(small_gallery, root)
    before = read_metadata(root)
    seq_bytes = sequence_path(root, before[0].id).read_bytes()
    n = describe_gallery(root, TemplateDescriber(seed=99), per_sequence=2)
    after = read_metadata(root)
    assert n == len(after) == len(before)
    assert [r.id for r in after] == [r.id for r in before]
    assert all(len(r.descriptions or []) == 2 for r in after)
    assert all(a.attributes == b.attributes for a, b in zip(after, before, strict=True))
    assert sum(a.description != b.description for a, b in zip(after, before, strict=True)) > 250
    assert sequence_path(root, before[0].id).read_bytes() == seq_bytes
    assert not list(root.glob("*.tmp"))


NEW_GROUPS = ("energy", "emotion", "posture", "step", "arm_swing", "style")
_FAMILY_TABLES = {"training": "_TRAIN", "heldout": "_HELDOUT", "synonym": "_SYNONYM"}


def test_three_families_share_no_phrase_over_all_values() -> None:
    owner: dict[str, tuple[str, tuple[str, str]]] = {}
    for family, name in _FAMILY_TABLES.items():
        for key, words in _family_phrases(getattr(describe, name)).items():
            for w in words:
                other = owner.setdefault(w.lower(), (family, key))
                assert other == (family, key), (w, other, family, key)


def test_every_new_value_has_phrases_in_all_three_families() -> None:
    for group in NEW_GROUPS:
        for value in ATTRIBUTES.get(group, ()):
            for name in _FAMILY_TABLES.values():
                table = getattr(describe, name)
                assert (group, value) in table and any(table[(group, value)].values()), (
                    name, group, value,
                )  # fmt: skip


def test_synonym_and_heldout_queries_mention_the_new_values() -> None:
    rng = random.Random(2)
    syn = {**_family_phrases(describe._HELDOUT), **_family_phrases(describe._SYNONYM)}
    held = _family_phrases(describe._HELDOUT)
    for group in NEW_GROUPS:
        for value in ATTRIBUTES.get(group, ()):
            predicate = {group: value, "gender": rng.choice(["male", "female"])}
            text = describe.synonym_query(predicate, rng)
            assert any(_has(text, w) for w in syn[(group, value)]), (predicate, text)
            text = heldout_query(predicate, rng)
            assert any(_has(text, w) for w in held[(group, value)]), (predicate, text)


def test_styles_combine_naturally_and_old_sets_still_compose() -> None:
    attrs = {"gender": "male", "age": "elderly", "energy": "tired", "step": "shuffling",
             "posture": "head_down"}  # fmt: skip
    text = compose(attrs, random.Random(3))
    assert text == compose(attrs, random.Random(3))
    assert text.endswith(".") and ", ," not in text and "  " not in text
    old = {"gender": "female", "age": "young", "pace": "brisk", "footwear": "heels"}
    assert compose(old, random.Random(0)) == compose(old, random.Random(0))
    # Two verb-setting values: one takes the verb, the other becomes "while ...".
    both = compose({"step": "shuffling", "style": "marching"}, random.Random(1))
    assert _has(both, "shuffling") or _has(both, "shuffles") or _has(both, "dragging their feet")
