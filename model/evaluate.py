"""Evaluation of text-to-gait retrieval and zero-shot attribute recognition.

Protocols (each reported beside a seeded *random ranking* computed the same way, not a
formula):

- ``retrieval``: every query of the queries file against the whole gallery; recall@1/5/10
  (at least one relevant in the top k), mAP, median rank of the first relevant hit; also
  ``per_family`` (the same metrics per query family, "phrasing" or "synonym") and
  ``per_style`` (mAP of the queries naming each non-default value of the pace and
  style/mood groups), each beside the random ranking's rows for the same queries.
- ``batches_of_32`` (TMR's protocol): the gallery is shuffled into batches of 32; each
  sequence's own description retrieves it among the 32 (ties: any sequence in the batch
  with the same attribute set counts as a hit).
- ``text_oracle``: the retrieval metrics when each sequence is represented by its own
  description's text embedding (no motion at all) — a reference for the text space.
- ``zero_shot``: for each attribute value, a prototype from its phrases scores every
  sequence; ROC-AUC per value (averaged per group), and top-1 accuracy of picking the right
  value within each group.

Relevance for ``retrieval`` comes only from the queries file.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gaitsearch.model.attributes import ATTRIBUTES, attribute_key
from gaitsearch.model.gallery import SequenceRecord, iter_gallery, scan_gallery

RECALL_KS = (1, 5, 10)
TMR_KS = (1, 2, 3, 5, 10)


class EvaluationError(ValueError):
    """Unusable evaluation input; the message names the file and the problem."""


# Groups whose non-default values get a row in the per-style AP table.
STYLE_TABLE_GROUPS = ("pace", "energy", "emotion", "posture", "step", "arm_swing", "style")
_DEFAULTS = frozenset({"nothing", "none", "neutral", "average", "flat", "normal"})


@dataclass
class Query:
    query: str
    relevant: list[str]
    family: str = "phrasing"
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class EmbeddedGallery:
    ids: list[str]
    records: list[SequenceRecord]
    vectors: np.ndarray  # (n, dim) L2-normalised


def load_queries(path: Path | str) -> list[Query]:
    """Read a JSONL queries file: ``{"query": str, "relevant": [id, ...]}`` per line.

    Optional fields: ``"family"`` (default "phrasing") and ``"attributes"`` (the predicate,
    for the per-style table).
    """
    path = Path(path)
    if not path.is_file():
        raise EvaluationError(f"{path}: queries file not found")
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvaluationError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
        if (
            not isinstance(doc, dict)
            or not isinstance(doc.get("query"), str)
            or not isinstance(doc.get("relevant"), list)
        ):
            raise EvaluationError(
                f'{path}:{lineno}: expected {{"query": str, "relevant": [id, ...]}}'
            )
        family = doc.get("family")
        attrs = doc.get("attributes")
        out.append(
            Query(
                doc["query"],
                [str(r) for r in doc["relevant"]],
                family if isinstance(family, str) and family else "phrasing",
                {str(g): str(v) for g, v in attrs.items()} if isinstance(attrs, dict) else {},
            )
        )
    if not out:
        raise EvaluationError(f"{path}: no queries")
    return out


def embed_gallery(
    model: Any,
    root: Path | str,
    strict: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> EmbeddedGallery:
    """Embed every valid sequence of a gallery directory with a :class:`GaitModel`."""
    records = scan_gallery(root, strict=strict)
    kept: list[SequenceRecord] = []
    arrays: list[np.ndarray] = []
    for record, arr in iter_gallery(root, strict=strict, records=records):
        kept.append(record)
        arrays.append(arr)
    if not kept:
        raise EvaluationError(f"{root}: no readable sequences")
    vecs = np.zeros((len(kept), model.dim), dtype=np.float32)
    step = 512
    for start in range(0, len(kept), step):
        stop = min(start + step, len(kept))
        vecs[start:stop] = model.embed_sequences(
            arrays[start:stop], [r.fps for r in kept[start:stop]]
        )
        if on_progress:
            on_progress(stop, len(kept))
    return EmbeddedGallery([r.id for r in kept], kept, vecs)


@functools.lru_cache(maxsize=8)
def _tie_order(n: int) -> np.ndarray:
    """A fixed pseudo-random order of ``n`` columns, to break ties in rankings."""
    return np.random.default_rng([n, 7919]).permutation(n)


def _relevant_ranks(row: np.ndarray, relevant: Sequence[int]) -> np.ndarray:
    """Sorted 1-based ranks of the ``relevant`` columns in the ranking by descending ``row``.

    Ties are broken in a fixed pseudo-random column order, not in column order: a query that
    is not grounded scores every item 0, and ranking those by gallery order (clip order on
    an imported gallery) would credit it with whatever sits first."""
    rel_idx = np.asarray(sorted(set(relevant)), dtype=np.int64)
    if rel_idx.size == 0:
        return rel_idx
    order = np.lexsort((_tie_order(len(row)), -np.asarray(row)))
    positions = np.empty(len(row), dtype=np.int64)
    positions[order] = np.arange(1, len(row) + 1)
    return np.sort(positions[rel_idx])


def ranking_metrics(
    scores: np.ndarray, relevant: Sequence[Sequence[int]], ks: Sequence[int] = RECALL_KS
) -> dict[str, float]:
    """Metrics of rankings by descending ``scores`` ``(Q, N)`` given relevant column sets."""
    recalls: dict[int, list[float]] = {k: [] for k in ks}
    aps, first_ranks = [], []
    for row, rel in zip(scores, relevant, strict=True):
        ranks = _relevant_ranks(row, rel)
        if ranks.size == 0:
            continue
        first_ranks.append(int(ranks[0]))
        aps.append(float(np.mean(np.arange(1, len(ranks) + 1) / ranks)))
        for k in ks:
            recalls[k].append(float(ranks[0] <= k))
    if not aps:
        raise EvaluationError("no query has a relevant item in the gallery")
    out = {f"recall@{k}": float(np.mean(v)) for k, v in recalls.items()}
    out["map"] = float(np.mean(aps))
    out["medr"] = float(np.median(first_ranks))
    out["n_queries"] = len(aps)
    return out


def random_scores(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A seeded random ranking: i.i.d. uniform scores (every ranking equally likely)."""
    return np.random.default_rng(seed).random(shape)


def retrieval(
    gallery: EmbeddedGallery, query_vectors: np.ndarray, queries: Sequence[Query], seed: int = 0
) -> dict[str, Any]:
    """The contract metrics over the whole gallery, and the same for a random ranking."""
    col = {seq_id: i for i, seq_id in enumerate(gallery.ids)}
    relevant = [[col[r] for r in q.relevant if r in col] for q in queries]
    keep = [i for i, rel in enumerate(relevant) if rel]
    if not keep:
        raise EvaluationError("no query's relevant ids are in the gallery")
    rel = [relevant[i] for i in keep]
    scores = query_vectors[keep] @ gallery.vectors.T
    rand = random_scores(scores.shape, seed)
    out: dict[str, Any] = ranking_metrics(scores, rel)
    out["random"] = ranking_metrics(rand, rel)
    out["n_gallery"] = len(gallery.ids)
    out["n_queries_skipped"] = len(queries) - len(keep)
    kept = [queries[i] for i in keep]
    out["per_family"] = per_family(scores, rand, rel, kept)
    out["per_style"] = per_style(average_precisions(scores, rel), average_precisions(rand, rel),
                                 kept)  # fmt: skip
    return out


def average_precisions(scores: np.ndarray, relevant: Sequence[Sequence[int]]) -> np.ndarray:
    """Per-query AP of the rankings by descending ``scores`` (as :func:`ranking_metrics`)."""
    out = np.zeros(len(relevant), dtype=np.float64)
    for q, (row, rel) in enumerate(zip(scores, relevant, strict=True)):
        ranks = _relevant_ranks(row, rel)
        if ranks.size:
            out[q] = float(np.mean(np.arange(1, len(ranks) + 1) / ranks))
    return out


def _ratio(ours: float, rand: float) -> float | None:
    return float(ours / rand) if rand > 0 else None


def per_family(
    scores: np.ndarray,
    rand: np.ndarray,
    relevant: Sequence[Sequence[int]],
    queries: Sequence[Query],
) -> dict[str, dict[str, Any]]:
    """The retrieval metrics per query family, beside the random ranking's on the same rows."""
    out: dict[str, dict[str, Any]] = {}
    for family in sorted({q.family for q in queries}):
        rows = [i for i, q in enumerate(queries) if q.family == family]
        rel = [relevant[i] for i in rows]
        ours = ranking_metrics(scores[rows], rel)
        base = ranking_metrics(rand[rows], rel)
        out[family] = {**ours, "random": base, "random_map": base["map"],
                       "ratio": _ratio(ours["map"], base["map"])}  # fmt: skip
    return out


def per_style(
    aps: np.ndarray, random_aps: np.ndarray, queries: Sequence[Query]
) -> dict[str, dict[str, Any]]:
    """``"group=value"`` -> mAP of the queries whose predicate names that value, vs random.

    One row per non-default value of :data:`STYLE_TABLE_GROUPS` named by some query.
    """
    out: dict[str, dict[str, Any]] = {}
    for group in STYLE_TABLE_GROUPS:
        for value in ATTRIBUTES.get(group, ()):
            if value in _DEFAULTS and not (group == "pace" and value == "normal"):
                continue
            rows = [i for i, q in enumerate(queries) if q.attributes.get(group) == value]
            if not rows:
                continue
            ours, base = float(np.mean(aps[rows])), float(np.mean(random_aps[rows]))
            out[f"{group}={value}"] = {
                "map": ours,
                "random_map": base,
                "ratio": _ratio(ours, base),
                "n_queries": len(rows),
            }
    return out


def group_key(record: SequenceRecord) -> str:
    """Attribute-set identity over the vocabulary's groups (a record's id if it has none)."""
    groups = tuple(g for g in ATTRIBUTES if g in record.attributes)
    return attribute_key(record.attributes, groups) if groups else f"id={record.id}"


def batches_of_32(
    gallery: EmbeddedGallery,
    encode_texts: Callable[[list[str]], np.ndarray],
    seed: int = 0,
    batch: int = 32,
) -> dict[str, Any]:
    """TMR's protocol: text-to-motion retrieval inside shuffled batches of 32 pairs."""
    have = [i for i, r in enumerate(gallery.records) if r.all_descriptions()]
    if len(have) < batch:
        return {"n_batches": 0}
    order = np.random.default_rng(seed).permutation(have)
    texts = [gallery.records[i].all_descriptions()[0] for i in order]
    text_vecs = encode_texts(texts)
    keys = [group_key(gallery.records[i]) for i in order]
    ours: list[dict[str, float]] = []
    rand: list[dict[str, float]] = []
    for b, start in enumerate(range(0, len(order) - batch + 1, batch)):
        idx = slice(start, start + batch)
        scores = text_vecs[idx] @ gallery.vectors[order[idx]].T
        bk = keys[idx]
        rel = [[j for j in range(batch) if bk[j] == bk[i]] for i in range(batch)]
        ours.append(ranking_metrics(scores, rel, TMR_KS))
        rand.append(ranking_metrics(random_scores(scores.shape, seed + 1 + b), rel, TMR_KS))

    def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
        names = [f"recall@{k}" for k in TMR_KS] + ["medr"]
        return {n: float(np.mean([r[n] for r in rows])) for n in names}

    return {**_mean(ours), "random": _mean(rand), "n_batches": len(ours)}


def text_oracle(
    gallery: EmbeddedGallery,
    query_vectors: np.ndarray,
    queries: Sequence[Query],
    encode_texts: Callable[[list[str]], np.ndarray],
    seed: int = 0,
) -> dict[str, Any]:
    """The same retrieval with each sequence replaced by its own description's embedding:
    what a motion encoder that reproduced its training target exactly would score (a
    reference point for how far text alone separates the queries' relevant sets)."""
    have = [i for i, r in enumerate(gallery.records) if r.all_descriptions()]
    if not have:
        return {}
    vecs = encode_texts([gallery.records[i].all_descriptions()[0] for i in have])
    oracle = EmbeddedGallery([gallery.ids[i] for i in have], [gallery.records[i] for i in have],
                             vecs)  # fmt: skip
    result = retrieval(oracle, query_vectors, queries, seed=seed)
    return {k: result[k] for k in ("recall@1", "recall@5", "recall@10", "map", "medr")}


def _roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Mann-Whitney ROC-AUC (ties count half); None when only one class is present."""
    pos, neg = labels.sum(), len(labels) - labels.sum()
    if pos == 0 or neg == 0:
        return None
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # average ranks for ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def zero_shot(
    gallery: EmbeddedGallery,
    prototypes: dict[str, dict[str, np.ndarray]],
    seed: int = 0,
) -> dict[str, Any]:
    """ROC-AUC per attribute value and top-1 accuracy per group, ours vs random scores.

    ``prototypes[group][value]`` is an L2-normalised text vector for that value.
    """
    rng = np.random.default_rng(seed)
    per_group: dict[str, Any] = {}
    for group, protos in prototypes.items():
        values = list(protos)
        truth = np.array([r.attributes.get(group) for r in gallery.records], dtype=object)
        present = np.array([t in protos for t in truth])
        if present.sum() < 2 or len(values) < 2:
            continue
        mat = np.stack([protos[v] for v in values])
        scores = gallery.vectors[present] @ mat.T  # (n, V)
        rand = rng.random(scores.shape)
        t = truth[present]
        aucs, rand_aucs = {}, {}
        for j, value in enumerate(values):
            labels = t == value
            auc = _roc_auc(labels, scores[:, j])
            if auc is not None:
                aucs[value] = auc
                rand_aucs[value] = _roc_auc(labels, rand[:, j])
        if not aucs:
            continue
        target = np.array([values.index(v) for v in t])
        per_group[group] = {
            "auc": float(np.mean(list(aucs.values()))),
            "top1": float(np.mean(scores.argmax(1) == target)),
            "random_auc": float(np.mean(list(rand_aucs.values()))),
            "random_top1": float(np.mean(rand.argmax(1) == target)),
            "auc_per_value": aucs,
        }
    if not per_group:
        return {}
    return {
        "auc_mean": float(np.mean([g["auc"] for g in per_group.values()])),
        "top1_mean": float(np.mean([g["top1"] for g in per_group.values()])),
        "random": {
            "auc_mean": float(np.mean([g["random_auc"] for g in per_group.values()])),
            "top1_mean": float(np.mean([g["random_top1"] for g in per_group.values()])),
        },
        "per_group": per_group,
    }


def attribute_prototypes(
    encode_texts: Callable[[list[str]], np.ndarray], groups: Sequence[str] | None = None
) -> dict[str, dict[str, np.ndarray]]:
    """A mean-phrase prototype for every value of the vocabulary's groups."""
    from gaitsearch.model.classify import value_phrases

    out: dict[str, dict[str, np.ndarray]] = {}
    for group in groups or ATTRIBUTES:
        out[group] = {}
        for value in ATTRIBUTES[group]:
            vecs = encode_texts(value_phrases(group, value))
            proto = vecs.mean(0)
            out[group][value] = proto / max(float(np.linalg.norm(proto)), 1e-8)
    return out


def evaluate(
    data: Path | str,
    queries_path: Path | str,
    retriever: Any,
    seed: int = 0,
    extras: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Everything ``gaitsearch eval`` prints, as one dict.

    ``retriever``: a :class:`~gaitsearch.model.query_pipeline.QueryPipeline` (or the
    index's ``Retriever``): texts reach the gallery's space only through it.
    """
    model = retriever.model

    def embed(texts: list[str]) -> np.ndarray:
        """Texts → the model's query vectors (its query head, in the attribute space)."""
        return np.asarray(retriever.query_vectors(texts), dtype=np.float32)

    queries = load_queries(queries_path)
    gallery = embed_gallery(model, data, on_progress=on_progress)
    text_vecs = retriever.text_vectors([q.query for q in queries])
    # What users get: each query answered on what it was understood as (not grounded: a zero
    # vector, so its relevant walks rank nowhere in particular).
    understood_vecs = retriever.read([q.query for q in queries])[0]
    out = retrieval(gallery, understood_vecs, queries, seed=seed)
    if extras:
        out["batches_of_32"] = batches_of_32(gallery, embed, seed=seed)
        out["text_oracle"] = text_oracle(
            gallery, text_vecs, queries, retriever.text_vectors, seed=seed
        )
        groups = [g for g in ATTRIBUTES if any(g in r.attributes for r in gallery.records)]
        if groups:
            protos = attribute_prototypes(embed, groups)
            out["zero_shot"] = zero_shot(gallery, protos, seed=seed)
    if extras:
        from gaitsearch.model import understanding as und

        out["understanding"] = und.understanding_report(
            und.QueryReader.for_model(model), retriever.text_vectors,
            und.load_query_records(queries_path),
        )  # fmt: skip
    out["checkpoint"] = model.fingerprint
    return out
