"""Query understanding with the shipped checkpoint: nonsense and off-topic text is refused,
walk descriptions are read as attribute terms, unsearchable words are reported ignored."""

from __future__ import annotations

import numpy as np
import pytest
from gaitsearch.model.negatives import generate_negatives
from gaitsearch.model.understanding import (
    QueryReader,
    Term,
    Understanding,
    content_words,
    read_offtopic,
    says_walking,
)


@pytest.fixture(scope="module")
def shipped():
    from gaitsearch.model.checkpoint import load_checkpoint

    return load_checkpoint()


@pytest.fixture(scope="module")
def reader(shipped) -> QueryReader:
    return QueryReader.for_model(shipped)


def _read(reader, text_encoder, texts: list[str]) -> list[Understanding]:
    return reader.read(texts, text_encoder.encode(texts), text_encoder.encode)


@pytest.mark.parametrize(
    "text",
    ["xyzzy qwerty", "the quarterly earnings beat expectations", "asdf jkl", "a jealous person"],
)
def test_nonsense_and_off_topic_are_not_grounded(reader, text_encoder, text) -> None:
    (u,) = _read(reader, text_encoder, [text])
    assert not u.grounded and u.terms == []
    assert u.detail and "pace" in u.detail and "woman in heels" in u.detail
    assert u.to_dict()["detail"] == u.detail


def test_walk_description_is_read_as_terms(reader, text_encoder) -> None:
    (u,) = _read(reader, text_encoder, ["woman in heels walking briskly"])
    terms = {t.name: t.value for t in u.terms}
    assert u.grounded and terms["gender"] == "female" and terms["footwear"] == "heels"
    assert terms["pace"] in ("brisk", "running")
    assert all(0.5 < t.confidence <= 1.0 for t in u.terms)
    assert u.ignored == []


def test_partly_understood_query_reports_what_it_ignored(reader, text_encoder) -> None:
    (u,) = _read(reader, text_encoder, ["a woman in a red coat walking fast"])
    assert u.grounded and {t.name for t in u.terms} >= {"gender", "pace"}
    assert "red" in u.ignored and "coat" in u.ignored and "woman" not in u.ignored
    d = u.to_dict()
    assert set(d) == {"grounded", "terms", "ignored"}
    assert set(d["terms"][0]) == {"name", "value", "confidence", "kind"}


def test_says_walking_needs_a_marked_value_a_walking_word_or_a_word_for_the_value() -> None:
    neutral = [Term("emotion", "neutral", 0.8)]
    assert not says_walking("a calm looking individual", neutral)
    assert says_walking("a calm individual strolling", neutral)
    assert says_walking("a calm individual", [*neutral, Term("age", "elderly", 0.9)])
    assert says_walking("Someone JOGGING", [Term("style", "none", 0.6)])
    assert says_walking("a calm individual", neutral, lambda w, t: 0.99 if w == "calm" else 0.0)
    assert not says_walking("a calm individual", neutral, lambda w, t: 0.9)


def test_unmarked_reading_alone_is_not_grounded(reader, text_encoder) -> None:
    # Read as emotion / posture "neutral" / "normal" only, with no word that says so alone.
    texts = ["a moody person", "someone doing yoga", "a moody person strolling"]
    moody, yoga, strolling = _read(reader, text_encoder, texts)
    assert not moody.grounded and moody.terms == [] and "moody" in moody.ignored
    assert not yoga.grounded and "yoga" in yoga.ignored
    assert strolling.grounded


def test_a_word_for_an_unmarked_value_grounds_it(reader, text_encoder) -> None:
    texts = ["a person with an average build", "a person with normal posture"]
    build, posture = _read(reader, text_encoder, texts)
    assert build.grounded and ("build", "average") in {(t.name, t.value) for t in build.terms}
    assert posture.grounded and ("posture", "normal") in {(t.name, t.value) for t in posture.terms}


def test_restrict_zeroes_what_was_not_understood(shipped, reader, text_encoder) -> None:
    texts = ["a woman in a red coat walking fast", "xyzzy qwerty"]
    vectors = text_encoder.encode(texts)
    us = reader.read(texts, vectors, text_encoder.encode)
    q = shipped.embed_queries(vectors)
    r = reader.restrict(q, us)
    assert not r[1].any()  # not grounded: nothing to search by
    starts = np.cumsum([0, *reader.sizes])
    kept = {t.name for t in us[0].terms}
    for g, name in enumerate(reader.groups):
        block = r[0, starts[g] : starts[g + 1]]
        assert (block == q[0, starts[g] : starts[g + 1]]).all() if name in kept else not block.any()


def test_text_space_checkpoint_reads_everything_as_grounded(tiny_checkpoint, text_encoder) -> None:
    from gaitsearch.model.checkpoint import load_checkpoint

    reader = QueryReader.for_model(load_checkpoint(tiny_checkpoint))
    (u,) = _read(reader, text_encoder, ["xyzzy qwerty"])
    assert u.grounded and u.terms == [] and u.ignored == []


def test_shipped_config_records_the_threshold_chosen_on_validation(shipped) -> None:
    entry = shipped.config.understanding
    assert entry and 0 < entry["threshold"] < 1 and entry["validation"]["n_walking"] >= 1000
    grounding = entry["grounding"]  # the grounding score's weight and cut, chosen on validation
    assert grounding["weight"] >= 0 and grounding["k"] >= 1
    assert str(grounding["weight"]) in entry["validation"]["balanced_by_weight"]


@pytest.mark.parametrize("text", ["walking", "a person walking", "show me someone", "walk"])
def test_a_text_of_framing_words_only_names_nothing(reader, text_encoder, text) -> None:
    (u,) = _read(reader, text_encoder, [text])
    assert not u.grounded and u.terms == [] and u.ignored == []


def test_grounding_score_orders_walks_above_off_topic_text(reader, text_encoder) -> None:
    texts = ["an old man limping slowly", "the quarterly earnings beat expectations"]
    score = reader.grounding_score(text_encoder.encode(texts))
    assert score[0] >= reader.grounding["threshold"] > score[1]


def test_validation_negatives_use_words_the_training_negatives_never_see() -> None:
    from gaitsearch.model import negatives

    for items in (negatives._ACTIVITIES, negatives._PROFESSIONS, negatives._MOODS,
                  negatives.GARMENTS, negatives.BRANDS, negatives._THINGS):  # fmt: skip
        train = negatives.word_part(items, "train")
        val = negatives.word_part(items, "validation")
        assert val and train and not set(train) & set(val)
        assert sorted(train + val) == sorted(items)
    val_texts = [t for s, t in generate_negatives(1500, seed=1, part="validation")
                 if s == "activity"]  # fmt: skip
    train_only = negatives.word_part(negatives._ACTIVITIES, "train")
    assert val_texts and not [t for t in val_texts if any(a in t for a in train_only)]
    with pytest.raises(ValueError, match="part must be one of"):
        generate_negatives(10, part="test")


def test_held_out_off_topic_set_is_separate_from_the_generated_negatives() -> None:
    heldout = set(read_offtopic())
    assert len(heldout) >= 200
    generated = {t for seed in (0, 1001) for _, t in generate_negatives(6000, seed=seed)}
    assert len(heldout & generated) <= 5  # short strings like "42" may coincide


def test_stop_and_framing_words_are_never_reported_ignored() -> None:
    assert content_words("Show me a person walking in a red coat") == ["red", "coat"]


def test_head_reading_is_a_softmax_per_group(reader, text_encoder) -> None:
    """The vectorised reading (one flat array, blocks as views) against its definition."""
    texts = ["woman in heels walking briskly", "a tired old man shuffling", "asdf jkl", "x"]
    vectors = text_encoder.encode(texts)
    log_probs = reader.group_log_probabilities(vectors)
    logits = (vectors @ reader.weight.T + reader.bias).astype(np.float64)
    start = 0
    for block, n in zip(log_probs, reader.sizes, strict=True):
        part = logits[:, start : start + n + 1]
        want = part - part.max(1, keepdims=True)
        want = want - np.log(np.exp(want).sum(1, keepdims=True))
        assert np.allclose(block, want, atol=1e-12)
        start += n + 1
    # The padded path of the terms and the per-group path agree.
    near = np.ones(len(texts), dtype=bool)
    assert reader._all_terms(log_probs, near) == reader._all_terms(list(log_probs), near)
    assert reader.group_log_probabilities(vectors[:0]).flat.shape[0] == 0
