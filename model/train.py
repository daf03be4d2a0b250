"""Training: align the motion encoder with the frozen text encoder (the loop).

Each step samples a batch of sequences and, for each, a caption or one of its descriptions
at random; augmentation is a random time window, left/right flip and joint dropout
(``preprocess.prepare_batch`` with an rng). AdamW with linear warm-up and cosine decay
(over steps, or over wall-clock time when a ``minutes`` budget is the binding limit).
Periodic evaluation on held-out data keeps the best checkpoint in ``out``; the resumable
training state lives in ``work_dir``. What differs between search spaces (encoder heads,
what is fitted before the loop, the loss) lives in :mod:`gaitsearch.model.search_space`.

The settings are :class:`TrainConfig` (:mod:`gaitsearch.model.train_config`); the other
jobs of a run: :mod:`~gaitsearch.model.train_data` (the gallery in memory, caption targets),
:mod:`~gaitsearch.model.train_validation` (validation, keeping the best),
:mod:`~gaitsearch.model.train_temperature` (the query temperature pick),
:mod:`~gaitsearch.model.train_state` (resume), :mod:`~gaitsearch.model.train_progress`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gaitsearch.model.attributes import ATTRIBUTES
from gaitsearch.model.captions import GROUPS, encode_attributes
from gaitsearch.model.checkpoint import CheckpointConfig, TextEncoderInfo
from gaitsearch.model.embedding_cache import EmbeddingCache
from gaitsearch.model.evaluate import evaluate
from gaitsearch.model.gait_model import GaitModel
from gaitsearch.model.gallery import GalleryError
from gaitsearch.model.losses import AttributeHeads, make_loss
from gaitsearch.model.measured import MeasuredSpace
from gaitsearch.model.motion_encoder import MotionEncoder, preset
from gaitsearch.model.preprocess import PreprocessConfig, prepare_batch
from gaitsearch.model.query_pipeline import QueryPipeline
from gaitsearch.model.search_space import SPACES
from gaitsearch.model.train_config import TrainConfig
from gaitsearch.model.train_data import TrainingBatch, caption_targets, load_training_set
from gaitsearch.model.train_progress import TrainingProgress
from gaitsearch.model.train_state import default_work_dir, load_state, save_state
from gaitsearch.model.train_temperature import QUERY_TEMPERATURES, pick_query_temperature
from gaitsearch.model.train_validation import holdout_metrics, keep_best, split_validation

__all__ = ["TrainConfig", "lr_factor", "train"]

QUERIES_FILE = "queries.jsonl"


def lr_factor(progress: float, step: int, warmup_steps: int) -> float:
    """Linear warm-up over steps, then cosine decay to 5% over the run's progress (0..1)."""
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
    cos = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
    return warm * cos


def _preprocess_config(cfg: TrainConfig) -> PreprocessConfig:
    return PreprocessConfig(
        n_frames=cfg.n_frames,
        target_fps=cfg.target_fps,
        centre=cfg.centre,
        scale_normalise=cfg.scale_normalise,
    )


def train(
    cfg: TrainConfig,
    text_encoder: Any,
    cache: EmbeddingCache | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run training as configured; returns a summary (steps, time, best metric, paths)."""
    if cfg.epochs is None and cfg.minutes is None:
        raise ValueError("give a number of epochs, a time budget in minutes, or both")
    out = Path(cfg.out)
    work = Path(cfg.work_dir) if cfg.work_dir else default_work_dir(out)
    work.mkdir(parents=True, exist_ok=True)
    device = torch.device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    if cache is None:
        cache = EmbeddingCache(text_encoder)
    progress = TrainingProgress(cfg.progress)
    # The attribute space trains on labels and captions; descriptions only feed the held-out
    # slice's queries when there is no separate validation data.
    embed = not SPACES[cfg.space].needs_attributes or not cfg.val_data
    full = load_training_set(cfg.data, cache, progress.note, embed=embed)
    train_set, holdout = split_validation(cfg, full, rng)
    val_queries = Path(cfg.val_data) / QUERIES_FILE if cfg.val_data else None
    if val_queries is not None and not val_queries.is_file():
        raise GalleryError(f"{val_queries}: missing (validation data needs a queries file)")
    log(
        f"training on {len(train_set)} sequences, {len(full.text_vectors)} distinct "
        f"descriptions; validation: {cfg.val_data or f'{len(holdout or [])} held out'}"
    )

    space = SPACES[cfg.space]
    captions = None
    if space.wants_captions(cfg.loss, cfg.captions):
        captions = caption_targets(
            train_set, cache, cfg.captions_per_sequence, cfg.seed, progress.note
        )
        if captions is not None and not space.needs_attributes:
            log(
                f"{len(captions.table.texts)} attribute-tagged captions "
                f"({cfg.captions_per_sequence} per sequence); multi-positive InfoNCE"
            )
    pre = _preprocess_config(cfg)
    codes = np.stack([encode_attributes(r.attributes) for r in train_set.records])
    has_attributes = bool((codes >= 0).any())
    vocabulary = None
    if space.needs_attributes and (not has_attributes or captions is None):
        raise GalleryError(
            f"{cfg.data}: the attribute search space needs sequences with attributes of the "
            f"vocabulary ({', '.join(GROUPS)}); train with --space text instead"
        )
    if (cfg.head == "attributes" or space.needs_attributes) and has_attributes:
        vocabulary = {g: list(ATTRIBUTES[g]) for g in GROUPS}
        log(f"attribute head over {len(vocabulary)} groups")
    space_opts = space.encoder_options(
        text_encoder.dim, vocabulary, cfg.query_temperature or QUERY_TEMPERATURES[0]
    )
    if space.needs_attributes and cfg.measured_weight > 0:
        space_opts["measured"] = MeasuredSpace.default_config(cfg.measured_weight)
        log(f"measured groups beside them (weight {cfg.measured_weight})")
    enc_cfg = preset(
        cfg.preset,
        max_frames=max(128, cfg.n_frames),
        attribute_vocabulary=vocabulary,
        **space_opts,
    )
    encoder = MotionEncoder(enc_cfg).to(device)
    sizes = encoder.attribute_sizes
    loss_opts: dict[str, float] = {}
    if cfg.loss == "infonce":
        loss_opts = {"temperature": cfg.temperature, "threshold": cfg.fn_threshold}
    elif cfg.loss == "triplet":
        loss_opts = {"margin": cfg.margin}
    loss_fn = make_loss(cfg.loss, **loss_opts).to(device)
    heads = None
    if not sizes and cfg.attribute_weight > 0 and has_attributes:
        heads = AttributeHeads(enc_cfg.d_model, [len(ATTRIBUTES[g]) for g in GROUPS]).to(device)
        log(f"auxiliary attribute heads (weight {cfg.attribute_weight})")
    # Everything trained besides the encoder (saved in the resumable state, not the checkpoint).
    objective = torch.nn.ModuleDict({"loss": loss_fn, **({"heads": heads} if heads else {})})
    space.freeze_for_training(encoder)
    params = [p for p in [*encoder.parameters(), *objective.parameters()] if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
    )
    steps_per_epoch = max(1, len(train_set) // cfg.batch_size)
    total_steps = int(math.ceil(cfg.epochs * steps_per_epoch)) if cfg.epochs else None
    budget_s = cfg.minutes * 60 if cfg.minutes else None

    step, elapsed_before, best = 0, 0.0, -1.0
    history: list[dict[str, Any]] = []
    if cfg.resume:
        step, elapsed_before, best, history = load_state(work, encoder, objective, optimizer)
        log(f"resumed from {work} at step {step} ({elapsed_before:.0f} s trained, best {best:.4f})")
        rng = np.random.default_rng([cfg.seed, step])

    if not cfg.resume:
        space.prepare_training(encoder, captions, codes, cfg.query_head_steps, cfg.seed, log)
    info = TextEncoderInfo(**text_encoder.describe())
    data_summary = {
        "data": str(cfg.data),
        "sequences": len(train_set),
        "distinct_descriptions": int(len(full.text_vectors)),
        "sources": sorted({r.source for r in full.records}),
    }

    def checkpoint_config(metrics: dict[str, Any]) -> CheckpointConfig:
        return CheckpointConfig(
            encoder=enc_cfg,
            preprocess=pre,
            text_encoder=info,
            training={
                **cfg.model_dump(exclude={"progress", "resume"}),
                "data_summary": data_summary,
                "steps": step,
                "seconds": round(elapsed_before + (time.monotonic() - started), 1),
                "parameters": encoder.num_parameters(),
            },
            metrics=metrics,
        )

    def validate() -> dict[str, Any]:
        model = GaitModel(checkpoint_config({}), encoder, fingerprint="training")
        try:
            if cfg.val_data:
                pipeline = QueryPipeline(model, text_encoder, encode_texts=cache.encode)
                metrics = evaluate(cfg.val_data, val_queries, pipeline, seed=cfg.seed, extras=False)
            elif holdout is not None:
                metrics = holdout_metrics(model, holdout, cfg.seed)
            else:
                metrics = {}
        finally:
            encoder.train()
        return metrics

    started = time.monotonic()
    encoder.train()
    loss_ema: float | None = None
    seen = 0
    rate_t0, rate_n = time.monotonic(), 0
    progress.start(total_steps, budget_s)
    last_metrics: dict[str, Any] = {}
    while True:
        elapsed = elapsed_before + time.monotonic() - started
        frac = [
            *([step / total_steps] if total_steps else []),
            *([elapsed / budget_s] if budget_s else []),
        ]
        done = max(frac)
        if done >= 1.0:
            break
        batch = rng.choice(len(train_set), size=min(cfg.batch_size, len(train_set)), replace=False)
        x, mask = prepare_batch(
            [train_set.sequences[i] for i in batch],
            train_set.fps[batch],
            pre,
            rng=rng,
            flip_p=cfg.flip_p,
            dropout_p=cfg.dropout_p,
            widths_p=cfg.widths_p,
        )
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * lr_factor(done, step, cfg.warmup_steps)
        xt, mt = torch.from_numpy(x).to(device), torch.from_numpy(mask).to(device)
        features = encoder.features(xt, mt)
        batch_codes = torch.from_numpy(codes[batch]).to(device)
        step_batch = TrainingBatch(
            train_set, batch, features, batch_codes, captions, objective, rng,
            cfg.descriptions_per_step, cfg.attribute_weight,
        )  # fmt: skip
        loss = space.training_loss(encoder, step_batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        step += 1
        seen += len(batch)
        rate_n += len(batch)
        value = float(loss.detach())
        loss_ema = value if loss_ema is None else 0.95 * loss_ema + 0.05 * value
        now = time.monotonic()
        rate = rate_n / max(now - rate_t0, 1e-6)
        if now - rate_t0 > 10:
            rate_t0, rate_n = now, 0
        progress.update(step, elapsed_before + now - started, loss_ema, rate)
        if step % cfg.eval_every == 0:
            last_metrics = validate()
            best = keep_best(
                last_metrics, best, encoder, checkpoint_config, out, history, step, loss_ema, log
            )
            save_state(work, encoder, objective, optimizer, step,
                        elapsed_before + time.monotonic() - started, best, history)  # fmt: skip
    progress.stop()
    last_metrics = validate()
    best = keep_best(last_metrics, best, encoder, checkpoint_config, out, history, step,
                      loss_ema, log)  # fmt: skip
    total_elapsed = elapsed_before + time.monotonic() - started
    save_state(work, encoder, objective, optimizer, step, total_elapsed, best, history)
    if space.picks_query_temperature and cfg.query_temperature is None and val_queries is not None:
        best = pick_query_temperature(out, cfg, text_encoder, cache, val_queries, log) or best
    return {
        "steps": step,
        "sequences_seen": seen,
        "seconds": round(total_elapsed, 1),
        "best_map": best,
        "final": last_metrics,
        "out": str(out),
        "work_dir": str(work),
        "history": history,
        "parameters": encoder.num_parameters(),
    }
