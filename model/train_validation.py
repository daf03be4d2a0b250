"""Validation during training and keeping the best checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from gaitsearch.model.checkpoint import CheckpointConfig, save_checkpoint
from gaitsearch.model.evaluate import EmbeddedGallery, Query, retrieval
from gaitsearch.model.gait_model import GaitModel
from gaitsearch.model.motion_encoder import MotionEncoder
from gaitsearch.model.train_config import TrainConfig
from gaitsearch.model.train_data import TrainingSet


def split_validation(
    cfg: TrainConfig, train: TrainingSet, rng: np.random.Generator
) -> tuple[TrainingSet, TrainingSet | None]:
    """Hold out a slice of the training gallery when no separate validation data is given."""
    if cfg.val_data or cfg.val_fraction <= 0 or len(train) < 40:
        return train, None
    n_val = max(32, int(len(train) * cfg.val_fraction))
    perm = rng.permutation(len(train))
    return train.subset(perm[n_val:]), train.subset(perm[:n_val])


def holdout_metrics(model: GaitModel, val: TrainingSet, seed: int) -> dict[str, Any]:
    """Each held-out sequence's first description retrieves the sequences with its
    attribute set (within the held-out slice)."""
    vecs = model.embed_sequences(val.sequences, list(val.fps))
    gallery = EmbeddedGallery([r.id for r in val.records], val.records, vecs)
    queries, qvecs = [], []
    for i, record in enumerate(val.records):
        relevant = [val.records[j].id for j in range(len(val)) if val.keys[j] == val.keys[i]]
        queries.append(Query(record.all_descriptions()[0], relevant))
        qvecs.append(val.text_vectors[val.desc_index[i][0]])
    return retrieval(gallery, model.embed_queries(np.stack(qvecs)), queries, seed=seed)


def metric_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint's config keeps of a validation result: the flat metrics and the
    random ranking's mAP."""
    summary = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
    if "random" in metrics:
        summary["random_map"] = metrics["random"]["map"]
    return summary


def keep_best(
    metrics: dict[str, Any],
    best: float,
    encoder: MotionEncoder,
    checkpoint_config: Callable[[dict[str, Any]], CheckpointConfig],
    out: Path,
    history: list[dict[str, Any]],
    step: int,
    loss: float | None,
    log: Callable[[str], None],
) -> float:
    score = float(metrics.get("map", 0.0)) if metrics else 0.0
    history.append({"step": step, "loss": loss, "map": score})
    # Without validation data every evaluation "improves": the last model is kept.
    if not metrics or score > best:
        save_checkpoint(encoder, checkpoint_config(metric_summary(metrics)), out)
        log(f"step {step}: loss {loss:.4f}, validation mAP {score:.4f} (best so far, saved {out})")
        return score if metrics else best
    log(f"step {step}: loss {loss:.4f}, validation mAP {score:.4f} (best {best:.4f})")
    return best
