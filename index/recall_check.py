"""The recall check of a new index version: real queries (the gallery's ``queries.jsonl`` or
its descriptions) through the one query pipeline, exact top-10 against the built index (a walk
found with the exact 10th score or better counts, see ``ExactTruth``), and the search
parameters tuned until the recall target is met (exact kinds need no check).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from gaitsearch.index.faiss_index import RECALL_TARGET, BuiltIndex, ExactTruth, tune_search
from gaitsearch.index.manifest import RecallInfo

log = logging.getLogger(__name__)
RECALL_QUERIES = 300


def recall_queries(
    data_dir: Path | None, descriptions: list[str], model, vectors: np.ndarray
) -> tuple[np.ndarray, str]:
    """Real query embeddings for the recall check: the gallery's ``queries.jsonl`` or its
    descriptions, encoded by the checkpoint's text encoder (and its query head); gallery
    vectors as last resort."""
    texts: list[str] = []
    source = "descriptions"
    qfile = data_dir / "queries.jsonl" if data_dir is not None else None
    if qfile is not None and qfile.is_file():
        with qfile.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    text = json.loads(line).get("query")
                except (json.JSONDecodeError, AttributeError):
                    continue
                if isinstance(text, str) and text and text not in texts:
                    texts.append(text)
                if len(texts) >= RECALL_QUERIES:
                    break
        source = "queries.jsonl"
    if len(texts) < 20:
        texts, source = list(dict.fromkeys(descriptions))[:RECALL_QUERIES], "descriptions"
    if texts:
        try:
            from gaitsearch.model.checkpoint import matching_text_encoder
            from gaitsearch.model.query_pipeline import QueryPipeline

            queries = QueryPipeline(model, matching_text_encoder(model)).query_vectors(texts)
            if queries.shape[1] == vectors.shape[1]:
                return queries, source
        except Exception as exc:  # noqa: BLE001 - recall check must not sink a build
            log.warning("text encoder unavailable for the recall check: %s", exc)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(vectors), min(RECALL_QUERIES, len(vectors)), replace=False)
    return vectors[np.sort(pick)], "gallery vectors"


def measure_recall(
    built: BuiltIndex,
    vectors: np.ndarray,
    queries: np.ndarray,
    source: str,
    ids: np.ndarray | None = None,
) -> RecallInfo:
    if built.kind == "flat":
        return RecallInfo(
            recall_at_10=1.0, queries=0, query_source="exact index", meets_target=True
        )
    # Ties count as found: many walks share one vector, and any of them is a right answer.
    truth = ExactTruth.of(vectors, queries, 10, ids=ids)
    recall = tune_search(built, queries, truth, 10)
    return RecallInfo(
        recall_at_10=round(recall, 4),
        queries=len(queries),
        query_source=source,
        meets_target=recall >= RECALL_TARGET,
    )
