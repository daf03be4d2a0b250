"""A lean checkpoint: an attribute-space checkpoint whose query head reads a static encoder.

In the attribute space the walk vectors are attribute log-likelihood ratios: the motion
encoder never sees the text encoder. Only the query head (text embedding → named values) and
query understanding (the grounding gates, the stored caption sample) read text embeddings, so a
checkpoint can change text encoder by refitting those alone:

1. the query head is rebuilt for the new embedding width and fitted from scratch on
   training-family captions (:func:`gaitsearch.model.understanding.training_texts`, the
   captions only), as training fits it;
2. :func:`gaitsearch.model.understanding.fit_understanding` refits it with the generated
   negatives and clutter and calibrates the gates, exactly as ``gaitsearch understanding fit``;
3. optionally the query temperature is picked again on a validation gallery (as training
   does), among :data:`gaitsearch.model.train_temperature.QUERY_TEMPERATURES`.

The result is a new checkpoint directory: the same motion encoder weights, another query head,
so another fingerprint. An index built with the source checkpoint is refused by it (the index
records the checkpoint and text encoder fingerprints) and it needs its own build, although the
walk vectors would come out identical. Nothing here changes the source checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def derive_lean_checkpoint(
    out: Path | str,
    source: Path | str | None = None,
    text_encoder: str | None = None,
    seed: int = 0,
    head_steps: int = 3000,
    fit_steps: int = 3000,
    noise: float | None = None,
    val_data: Path | str | None = None,
    cache: Path | str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Write the lean version of ``source`` (default: the shipped checkpoint) into ``out``;
    returns a summary (fingerprints, fit, calibration, chosen temperature)."""
    import torch

    threads = torch.get_num_threads()
    # One thread: on these small tensors more threads only contend (~6x slower on 2 busy
    # cores, measured); training's --threads 1 for the same reason.
    torch.set_num_threads(1)
    try:
        return _derive(out, source, text_encoder, seed, head_steps, fit_steps, noise, val_data,
                       cache, log)  # fmt: skip
    finally:
        torch.set_num_threads(threads)


def _derive(
    out: Path | str,
    source: Path | str | None,
    text_encoder: str | None,
    seed: int,
    head_steps: int,
    fit_steps: int,
    noise: float | None,
    val_data: Path | str | None,
    cache: Path | str | None,
    log: Callable[[str], None],
) -> dict[str, Any]:
    import torch
    from gaitsearch.model.checkpoint import TextEncoderInfo, load_checkpoint
    from gaitsearch.model.embedding_cache import EmbeddingCache
    from gaitsearch.model.query_head import QueryHead, train_query_head
    from gaitsearch.model.static_encoder import LEAN_TEXT_ENCODER
    from gaitsearch.model.text_encoder import load_text_encoder
    from gaitsearch.model.understanding import (
        FIT_NOISE,
        fit_understanding,
        save_understanding,
        training_texts,
    )

    model = load_checkpoint(source)
    if model.space != "attributes":
        raise ValueError("only an attribute-space checkpoint can change text encoder this way")
    source_info = {"path": str(model.path), "fingerprint": model.fingerprint,
                   "text_encoder": model.config.text_encoder.model_dump()}  # fmt: skip
    encoder = load_text_encoder(text_encoder or LEAN_TEXT_ENCODER)
    embed = EmbeddingCache(encoder, cache).encode
    log(f"text encoder {encoder.name} ({encoder.dim}-d, fingerprint {encoder.fingerprint})")

    # 1. a query head for the new width, fitted from scratch on training-family captions
    motion = model.encoder
    old = motion.query_head
    head = QueryHead(encoder.dim, motion.attribute_sizes, old.temperature)
    data = training_texts(seed=seed)
    rows = [i for i, kind in enumerate(data.kinds) if kind == "caption"]
    codes = data.code_array(len(motion.attribute_sizes))[rows]
    vectors = np.asarray(embed([data.texts[i] for i in rows]), dtype=np.float32)
    with torch.enable_grad():
        loss = train_query_head(head, vectors, codes, steps=head_steps, seed=seed)
    log(f"query head fitted on {len(rows)} captions ({head_steps} steps, loss {loss:.3f})")
    motion.query_head = head
    model.config.encoder.text_dim = encoder.dim
    info = {k: v for k, v in encoder.describe().items() if k in TextEncoderInfo.model_fields}
    model.config.text_encoder = TextEncoderInfo(**info)

    # 2. negatives, clutter and calibration: the understanding refit
    fit_noise = FIT_NOISE if noise is None else noise
    entry = fit_understanding(model, embed, seed=seed, steps=fit_steps, log=log, noise=fit_noise)
    model.config.metrics = {}  # the source's numbers were measured with another query head
    model.config.training = {
        **model.config.training,
        "lean": dict(
            source=source_info,
            head_steps=head_steps,
            fit_steps=fit_steps,
            noise=fit_noise,
            seed=seed,
        ),
    }
    path = save_understanding(model, out)

    # 3. the query temperature, on validation queries (as training picks it)
    chosen = None
    if val_data is not None:
        chosen = pick_temperature(path, Path(val_data), embed, log)
    lean = load_checkpoint(path)
    return {
        "out": str(path),
        "fingerprint": lean.fingerprint,
        "source": source_info,
        "text_encoder": lean.config.text_encoder.model_dump(),
        "head_loss": round(loss, 4),
        "query_temperature": lean.config.encoder.query_temperature,
        "temperature_validation": chosen,
        "understanding": {k: v for k, v in entry.items() if k != "fitted"},
    }


def pick_temperature(
    path: Path, val_data: Path, embed: Callable[[list[str]], np.ndarray], log: Callable[[str], None]
) -> dict[str, float]:
    """Re-pick the query head's temperature on ``val_data``'s queries (the gallery embedded
    once) and rewrite the checkpoint with the best; returns mAP per temperature."""
    from gaitsearch.model.checkpoint import load_checkpoint, save_checkpoint
    from gaitsearch.model.evaluate import embed_gallery, load_queries, retrieval
    from gaitsearch.model.train_temperature import QUERY_TEMPERATURES

    model = load_checkpoint(path)
    gallery = embed_gallery(model, val_data)
    queries = load_queries(val_data / "queries.jsonl")
    text = embed([q.query for q in queries])
    scores: dict[float, float] = {}
    for tau in QUERY_TEMPERATURES:
        model.config.encoder.query_temperature = tau
        scores[tau] = float(retrieval(gallery, model.embed_queries(text), queries)["map"])
    best = max(scores, key=lambda t: scores[t])
    tried = ", ".join(f"{t} → mAP {m:.4f}" for t, m in scores.items())
    log(f"query temperature on validation: {tried}; keeping {best}")
    model.config.encoder.query_temperature = best
    model.encoder.query_head.temperature = best
    model.config.training = {**model.config.training, "query_temperature": best}
    save_checkpoint(model.encoder, model.config, path)  # the caption sample stays beside it
    return {str(t): round(m, 4) for t, m in scores.items()}
