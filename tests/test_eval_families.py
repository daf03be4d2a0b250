"""Query families (phrasing / synonym) and the per-family and per-style evaluation tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gaitsearch.model.attributes import ATTRIBUTES
from gaitsearch.model.describe import SYNONYM_GROUPS
from gaitsearch.model.evaluate import (
    EmbeddedGallery,
    Query,
    average_precisions,
    load_queries,
    random_scores,
    ranking_metrics,
    retrieval,
)
from gaitsearch.model.gallery import SequenceRecord
from gaitsearch.model.synth import build_queries, sample_attributes

DEFAULTS = {"nothing", "none", "neutral", "average", "flat", "normal"}


@pytest.fixture(scope="module")
def gallery_attributes() -> dict[str, dict[str, str]]:
    rng = np.random.default_rng(7)
    return {f"s{i:04d}": sample_attributes(rng) for i in range(400)}


def test_build_queries_writes_both_families_with_exact_relevant_sets(gallery_attributes) -> None:
    queries = build_queries(gallery_attributes, seed=3, n_queries=90)
    assert len(queries) == 90
    families = [q["family"] for q in queries]
    assert set(families) == {"phrasing", "synonym"}
    assert 20 <= families.count("synonym") <= 40
    for q in queries:
        predicate = q["attributes"]
        expected = sorted(
            i for i, a in gallery_attributes.items()
            if all(a.get(g) == v for g, v in predicate.items())
        )  # fmt: skip
        assert sorted(q["relevant"]) == expected and expected
        assert not all(v in DEFAULTS and g != "pace" for g, v in predicate.items())
        if q["family"] == "synonym":
            assert any(g in SYNONYM_GROUPS and v not in DEFAULTS for g, v in predicate.items())
    keys = [json.dumps(q["attributes"], sort_keys=True) for q in queries]
    assert len(set(keys)) == len(keys)
    assert build_queries(gallery_attributes, seed=3, n_queries=90) == queries


def test_old_nine_group_galleries_still_get_queries() -> None:
    rng = np.random.default_rng(1)
    old_groups = ("gender", "age", "build", "pace", "footwear", "carrying", "impairment",
                  "energy", "view")  # fmt: skip
    attrs = {}
    for i in range(200):
        a = sample_attributes(rng)
        attrs[f"o{i}"] = {g: a[g] for g in old_groups}
    queries = build_queries(attrs, seed=0, n_queries=30)
    assert len(queries) >= 25
    assert all(set(q["attributes"]) <= set(old_groups) for q in queries)


def test_queries_file_without_family_loads_as_phrasing(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    lines = [{"query": "a woman", "relevant": ["a"]},
             {"query": "a glum man", "relevant": ["b"], "family": "synonym",
              "attributes": {"emotion": "sad", "gender": "male"}}]  # fmt: skip
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    q = load_queries(path)
    assert [x.family for x in q] == ["phrasing", "synonym"]
    assert q[0].attributes == {} and q[1].attributes["emotion"] == "sad"


def _toy() -> tuple[EmbeddedGallery, np.ndarray, list[Query]]:
    rng = np.random.default_rng(0)
    n = 60
    vecs = rng.normal(size=(n, 8)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = [f"g{i}" for i in range(n)]
    records = [SequenceRecord(id=i, fps=25.0) for i in ids]
    queries = [
        Query("q0", ["g1", "g2"], "phrasing", {"pace": "brisk"}),
        Query("q1", ["g3"], "synonym", {"emotion": "sad", "gender": "male"}),
        Query("q2", ["g4", "g5", "g6"], "synonym", {"style": "marching"}),
        Query("q3", ["g7"], "phrasing", {"emotion": "sad"}),
        Query("q4", ["g8"], "phrasing", {"emotion": "neutral", "pace": "slow"}),
    ]
    qv = rng.normal(size=(len(queries), 8)).astype(np.float32)
    return EmbeddedGallery(ids, records, vecs), qv, queries


def test_retrieval_reports_per_family_and_per_style_beside_random() -> None:
    gallery, qv, queries = _toy()
    out = retrieval(gallery, qv, queries, seed=5)
    # The existing keys stay.
    for key in ("recall@1", "recall@5", "recall@10", "map", "medr", "n_queries", "random",
                "n_gallery", "n_queries_skipped"):  # fmt: skip
        assert key in out
    assert set(out["per_family"]) == {"phrasing", "synonym"}
    col = {s: i for i, s in enumerate(gallery.ids)}
    rel = [[col[r] for r in q.relevant] for q in queries]
    scores = qv @ gallery.vectors.T
    rand = random_scores(scores.shape, 5)  # the same random ranking as the overall baseline
    for family, rows in (("phrasing", [0, 3, 4]), ("synonym", [1, 2])):
        row = out["per_family"][family]
        ours = ranking_metrics(scores[rows], [rel[i] for i in rows])
        base = ranking_metrics(rand[rows], [rel[i] for i in rows])
        assert row["map"] == pytest.approx(ours["map"])
        assert row["random_map"] == pytest.approx(base["map"])
        assert row["ratio"] == pytest.approx(ours["map"] / base["map"])
        assert row["n_queries"] == len(rows)
    aps, raps = average_precisions(scores, rel), average_precisions(rand, rel)
    assert float(np.mean(aps)) == pytest.approx(out["map"])
    assert float(np.mean(raps)) == pytest.approx(out["random"]["map"])
    style = out["per_style"]
    assert style["emotion=sad"]["n_queries"] == 2
    assert style["emotion=sad"]["map"] == pytest.approx(np.mean(aps[[1, 3]]))
    assert style["emotion=sad"]["random_map"] == pytest.approx(np.mean(raps[[1, 3]]))
    assert style["style=marching"]["n_queries"] == 1
    assert "pace=brisk" in style and "pace=slow" in style
    assert "emotion=neutral" not in style  # defaults get no row
    assert all(k.split("=")[1] in ATTRIBUTES[k.split("=")[0]] for k in style)


def test_generated_negatives_never_name_a_new_value() -> None:
    """Moods and walking styles are searchable now: no negative or clutter phrase names one."""
    import random
    import re

    from gaitsearch.model import describe
    from gaitsearch.model.negatives import clutter_phrase, generate_negatives

    words = {value.replace("_", " ") for g in SYNONYM_GROUPS for value in ATTRIBUTES.get(g, ())
             if value not in DEFAULTS}  # fmt: skip
    for table in (describe._TRAIN, describe._HELDOUT, describe._SYNONYM):
        for (group, value), entry in table.items():
            if group in SYNONYM_GROUPS and value not in DEFAULTS:
                words |= {p for kind in entry.values() for p in kind}
    pattern = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, sorted(words))) + r")(?![\w-])")
    rng = random.Random(0)
    texts = [t for _, t in generate_negatives(4000, seed=0)]
    texts += [clutter_phrase(rng) for _ in range(500)]
    hits = [t for t in texts if pattern.search(t.lower())]
    assert not hits, hits[:5]


def test_ties_are_not_broken_in_gallery_order() -> None:
    """A query that is not grounded scores every walk 0: its relevant walks must rank like a
    random pick, even when they are the gallery's first columns (an imported gallery is in
    clip order)."""
    n, rel = 1000, list(range(20))
    flat = ranking_metrics(np.zeros((1, n)), [rel])
    assert flat["map"] < 0.1  # column order would give 1.0; chance is about 0.02
    assert flat == ranking_metrics(np.zeros((1, n)), [rel])  # deterministic
    scores = np.zeros((1, n))
    scores[0, rel] = 1.0  # distinct scores still rank as they say
    assert ranking_metrics(scores, [rel])["map"] == 1.0
    assert average_precisions(np.zeros((1, n)), [rel])[0] == flat["map"]
