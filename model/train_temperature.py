"""The attribute space's query temperature, picked on the validation queries after training."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gaitsearch.model.checkpoint import save_checkpoint
from gaitsearch.model.embedding_cache import EmbeddingCache
from gaitsearch.model.evaluate import retrieval
from gaitsearch.model.train_config import TrainConfig
from gaitsearch.model.train_validation import metric_summary

# Query-head temperatures tried on the validation queries after training (first = default).
QUERY_TEMPERATURES = (0.25, 0.1, 0.5, 1.0)


def pick_query_temperature(
    out: Path,
    cfg: TrainConfig,
    text_encoder: Any,
    cache: EmbeddingCache,
    val_queries: Path,
    log: Callable[[str], None],
) -> float | None:
    """Choose the query head's softmax temperature on the validation queries (the gallery
    is embedded once) and re-save the best checkpoint with it; returns its mAP."""
    from gaitsearch.model.checkpoint import load_checkpoint
    from gaitsearch.model.evaluate import embed_gallery, load_queries

    model = load_checkpoint(out)
    assert cfg.val_data is not None
    gallery = embed_gallery(model, cfg.val_data)
    queries = load_queries(val_queries)
    text = cache.encode([q.query for q in queries])
    scores: dict[float, dict[str, Any]] = {}
    for tau in QUERY_TEMPERATURES:
        model.config.encoder.query_temperature = tau
        scores[tau] = retrieval(gallery, model.embed_queries(text), queries, seed=cfg.seed)
    chosen = max(scores, key=lambda t: scores[t]["map"])
    log(
        "query temperature on validation: "
        + ", ".join(f"{t} → mAP {scores[t]['map']:.4f}" for t in QUERY_TEMPERATURES)
        + f"; keeping {chosen}"
    )
    config = model.config.model_copy(deep=True)
    config.encoder.query_temperature = chosen
    model.encoder.query_head.temperature = chosen
    config.metrics = {**config.metrics, **metric_summary(scores[chosen])}
    config.training = {**config.training, "query_temperature": chosen}
    save_checkpoint(model.encoder, config, out)
    return float(scores[chosen]["map"])
