"""Training: align the motion encoder with the frozen text encoder.

The whole training gallery is loaded into memory once (raw arrays + fps), and every
distinct description is embedded once through the on-disk :class:`EmbeddingCache`. Each
step samples a batch of sequences and, for each, one of its descriptions at random;
augmentation is a random time window, left/right flip and joint dropout
(``preprocess.prepare_batch`` with an rng). AdamW with linear warm-up and cosine decay
(over steps, or over wall-clock time when a ``minutes`` budget is the binding limit).
Periodic evaluation on held-out data keeps the best checkpoint in ``out``; the resumable
training state lives in ``work_dir``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gaitsearch.model.attributes import ATTRIBUTES
from gaitsearch.model.captions import (
    GROUPS,
    CaptionTable,
    applies_mask,
    build_captions,
    encode_attributes,
)
from gaitsearch.model.checkpoint import (
    CheckpointConfig,
    TextEncoderInfo,
    save_checkpoint,
)
from gaitsearch.model.embedding_cache import EmbeddingCache
from gaitsearch.model.evaluate import (
    EmbeddedGallery,
    Query,
    evaluate,
    group_key,
    retrieval,
)
from gaitsearch.model.gait_model import GaitModel
from gaitsearch.model.gallery import GalleryError, SequenceRecord, iter_gallery, scan_gallery
from gaitsearch.model.losses import (
    LOSSES,
    AttributeHeads,
    attribute_ce,
    make_loss,
    one_hot_attributes,
)
from gaitsearch.model.motion_encoder import MotionEncoder, preset
from gaitsearch.model.preprocess import PreprocessConfig, prepare_batch
from gaitsearch.model.query_pipeline import QueryPipeline
from pydantic import BaseModel, Field

QUERIES_FILE = "queries.jsonl"


class TrainConfig(BaseModel):
    """Every knob of a training run (recorded in the checkpoint's ``training``)."""

    data: str
    out: str
    preset: str = "small"
    loss: str = Field(default="infonce", pattern="^(" + "|".join(LOSSES) + ")$")
    epochs: float | None = None
    minutes: float | None = None
    batch_size: int = Field(default=128, ge=2)
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.05, ge=0)
    warmup_steps: int = Field(default=200, ge=0)
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    flip_p: float = Field(default=0.5, ge=0, le=1)
    dropout_p: float = Field(default=0.05, ge=0, le=1)
    temperature: float = Field(default=0.07, gt=0)
    fn_threshold: float = Field(default=0.95, gt=0, le=1)
    margin: float = 10.0
    descriptions_per_step: int = Field(default=1, ge=1)
    captions: str = Field(default="attributes", pattern="^(attributes|descriptions)$")
    captions_per_sequence: int = Field(default=8, ge=1)
    head: str = Field(default="attributes", pattern="^(attributes|projection)$")
    attribute_weight: float = Field(default=1.0, ge=0)
    space: str = Field(default="attributes", pattern="^(text|attributes)$")
    query_temperature: float | None = Field(default=None, gt=0)
    query_head_steps: int = Field(default=3000, ge=1)
    n_frames: int = 32
    target_fps: float = 12.5
    centre: str = "pelvis"
    scale_normalise: bool = True
    val_data: str | None = None
    val_fraction: float = Field(default=0.05, ge=0, lt=1)
    eval_every: int = Field(default=250, ge=1)
    work_dir: str | None = None
    resume: bool = False
    progress: bool = True


@dataclass
class TrainingSet:
    """A gallery in memory: raw sequences, descriptions as indices into one vector table."""

    records: list[SequenceRecord]
    sequences: list[np.ndarray]
    fps: np.ndarray
    keys: list[str]
    desc_index: list[np.ndarray]
    text_vectors: np.ndarray

    def __len__(self) -> int:
        return len(self.records)

    def subset(self, idx: np.ndarray) -> TrainingSet:
        return TrainingSet(
            [self.records[i] for i in idx],
            [self.sequences[i] for i in idx],
            self.fps[idx],
            [self.keys[i] for i in idx],
            [self.desc_index[i] for i in idx],
            self.text_vectors,
        )


def load_training_set(
    root: Path | str,
    cache: EmbeddingCache,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> TrainingSet:
    """Read a gallery (skipping bad files) and embed its distinct descriptions once."""
    records = scan_gallery(root)
    kept, arrays = [], []
    for i, (record, arr) in enumerate(iter_gallery(root, records=records)):
        if not record.all_descriptions():
            continue  # nothing to align with
        kept.append(record)
        arrays.append(arr)
        if on_progress and i % 500 == 0:
            on_progress("loading sequences", i, len(records))
    if not kept:
        raise GalleryError(f"{root}: no readable sequence with a description")
    table: dict[str, int] = {}
    desc_index = []
    for record in kept:
        desc_index.append(
            np.array([table.setdefault(t, len(table)) for t in record.all_descriptions()])
        )
    texts = list(table)
    vectors = cache.encode(
        texts,
        on_progress=(lambda d, n: on_progress("embedding descriptions", d, n))
        if on_progress
        else None,
    )
    return TrainingSet(
        kept,
        arrays,
        np.array([r.fps for r in kept], dtype=np.float32),
        [group_key(r) for r in kept],
        desc_index,
        vectors,
    )


def _text_targets(
    data: TrainingSet, batch: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    """Per sequence, the normalised mean of ``k`` of its descriptions sampled this step.

    Descriptions mention random subsets of a walker's attributes; averaging a few gives a
    target that covers more of them than any single sentence (k=1: one description).
    """
    out = np.zeros((len(batch), data.text_vectors.shape[1]), dtype=np.float32)
    for row, i in enumerate(batch):
        choices = data.desc_index[i]
        pick = rng.choice(choices, size=min(k, len(choices)), replace=False)
        vec = data.text_vectors[pick].mean(0)
        out[row] = vec / max(float(np.linalg.norm(vec)), 1e-8)
    return out


def lr_factor(progress: float, step: int, warmup_steps: int) -> float:
    """Linear warm-up over steps, then cosine decay to 5% over the run's progress (0..1)."""
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
    cos = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
    return warm * cos


def default_work_dir(out: Path) -> Path:
    root = os.environ.get("GAITSEARCH_CACHE_DIR") or str(Path.home() / ".cache" / "gaitsearch")
    tag = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:12]
    return Path(root) / "runs" / f"{out.name}-{tag}"


def _preprocess_config(cfg: TrainConfig) -> PreprocessConfig:
    return PreprocessConfig(
        n_frames=cfg.n_frames,
        target_fps=cfg.target_fps,
        centre=cfg.centre,
        scale_normalise=cfg.scale_normalise,
    )


def _validation(
    cfg: TrainConfig, train: TrainingSet, rng: np.random.Generator
) -> tuple[TrainingSet, TrainingSet | None]:
    """Hold out a slice of the training gallery when no separate validation data is given."""
    if cfg.val_data or cfg.val_fraction <= 0 or len(train) < 40:
        return train, None
    n_val = max(32, int(len(train) * cfg.val_fraction))
    perm = rng.permutation(len(train))
    return train.subset(perm[n_val:]), train.subset(perm[:n_val])


def _holdout_metrics(model: GaitModel, val: TrainingSet, seed: int) -> dict[str, Any]:
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


@dataclass
class CaptionTargets:
    """Attribute-tagged captions of a training set and their embeddings."""

    table: CaptionTable
    vectors: np.ndarray

    def sample(
        self, data: TrainingSet, batch: np.ndarray, rng: np.random.Generator, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """One caption per sequence (its description where it has no tagged caption) and the
        ``(B, B)`` positives mask: ``[i, j]`` when caption j applies to sequence i."""
        out = np.zeros((len(batch), self.vectors.shape[1]), dtype=np.float32)
        codes = np.full((len(batch), self.table.codes.shape[1]), -2, dtype=np.int8)
        for row, i in enumerate(batch):
            mine = self.table.of_sequence[i]
            if len(mine):
                pick = int(rng.choice(mine))
                out[row] = self.vectors[pick]
                codes[row] = self.table.codes[pick]
        untagged = codes[:, 0] == -2
        if untagged.any():
            out[untagged] = _text_targets(data, batch[untagged], k, rng)
        positives = applies_mask(codes, self.table.sequence_codes[batch]).T
        positives[:, untagged] = False
        positives[np.arange(len(batch)), np.arange(len(batch))] = True
        return out, positives


def caption_targets(
    data: TrainingSet,
    cache: EmbeddingCache,
    per_sequence: int,
    seed: int,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> CaptionTargets | None:
    """Tagged captions for every sequence with attributes (None when no sequence has any)."""
    table = build_captions([r.attributes for r in data.records], per_sequence, seed)
    if not table.texts:
        return None
    vectors = cache.encode(
        table.texts,
        on_progress=(lambda d, n: on_progress("embedding captions", d, n)) if on_progress else None,
    )
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-8)
    return CaptionTargets(table, vectors.astype(np.float32))


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
    progress = _Progress(cfg.progress)
    full = load_training_set(cfg.data, cache, progress.note)
    train_set, holdout = _validation(cfg, full, rng)
    val_queries = Path(cfg.val_data) / QUERIES_FILE if cfg.val_data else None
    if val_queries is not None and not val_queries.is_file():
        raise GalleryError(f"{val_queries}: missing (validation data needs a queries file)")
    log(
        f"training on {len(train_set)} sequences, {len(full.text_vectors)} distinct "
        f"descriptions; validation: {cfg.val_data or f'{len(holdout or [])} held out'}"
    )

    attribute_space = cfg.space == "attributes"
    captions = None
    if attribute_space or (cfg.captions == "attributes" and cfg.loss == "infonce"):
        captions = caption_targets(
            train_set, cache, cfg.captions_per_sequence, cfg.seed, progress.note
        )
        if captions is not None and not attribute_space:
            log(
                f"{len(captions.table.texts)} attribute-tagged captions "
                f"({cfg.captions_per_sequence} per sequence); multi-positive InfoNCE"
            )
    pre = _preprocess_config(cfg)
    codes = np.stack([encode_attributes(r.attributes) for r in train_set.records])
    has_attributes = bool((codes >= 0).any())
    vocabulary = None
    if attribute_space and (not has_attributes or captions is None):
        raise GalleryError(
            f"{cfg.data}: the attribute search space needs sequences with attributes of the "
            f"vocabulary ({', '.join(GROUPS)}); train with --space text instead"
        )
    if (cfg.head == "attributes" or attribute_space) and has_attributes:
        vocabulary = {g: list(ATTRIBUTES[g]) for g in GROUPS}
        log(f"attribute head over {len(vocabulary)} groups")
    space_opts: dict[str, Any] = {"out_dim": text_encoder.dim}
    if attribute_space and vocabulary:
        space_opts = {
            "space": "attributes",
            "out_dim": sum(len(v) for v in vocabulary.values()),
            "text_dim": text_encoder.dim,
            "query_temperature": cfg.query_temperature or QUERY_TEMPERATURES[0],
        }
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
    if attribute_space:
        encoder.query_head.requires_grad_(False)  # fitted on captions, not by this loop
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
        step, elapsed_before, best, history = _load_state(work, encoder, objective, optimizer)
        log(f"resumed from {work} at step {step} ({elapsed_before:.0f} s trained, best {best:.4f})")
        rng = np.random.default_rng([cfg.seed, step])

    if attribute_space and not cfg.resume and captions is not None:
        _prepare_attribute_space(encoder, captions, codes, cfg, log)
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
                metrics = _holdout_metrics(model, holdout, cfg.seed)
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
        )
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * lr_factor(done, step, cfg.warmup_steps)
        xt, mt = torch.from_numpy(x).to(device), torch.from_numpy(mask).to(device)
        features = encoder.features(xt, mt)
        batch_codes = torch.from_numpy(codes[batch]).to(device)
        if attribute_space:
            # Recognition is the whole job; the query head was fitted on the captions.
            loss = attribute_ce(encoder.group_logits(features), batch_codes)
        else:
            loss = _text_space_loss(
                cfg, encoder, objective, features, batch_codes, train_set, batch, captions, rng
            )
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
            best = _keep_best(
                last_metrics, best, encoder, checkpoint_config, out, history, step, loss_ema, log
            )
            _save_state(work, encoder, objective, optimizer, step,
                        elapsed_before + time.monotonic() - started, best, history)  # fmt: skip
    progress.stop()
    last_metrics = validate()
    best = _keep_best(last_metrics, best, encoder, checkpoint_config, out, history, step,
                      loss_ema, log)  # fmt: skip
    total_elapsed = elapsed_before + time.monotonic() - started
    _save_state(work, encoder, objective, optimizer, step, total_elapsed, best, history)
    if attribute_space and cfg.query_temperature is None and val_queries is not None:
        best = _pick_query_temperature(out, cfg, text_encoder, cache, val_queries, log) or best
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


def _text_space_loss(
    cfg: TrainConfig,
    encoder: MotionEncoder,
    objective: torch.nn.ModuleDict,
    features: torch.Tensor,
    batch_codes: torch.Tensor,
    train_set: TrainingSet,
    batch: np.ndarray,
    captions: CaptionTargets | None,
    rng: np.random.Generator,
) -> torch.Tensor:
    """The text-space objective: the configured alignment loss against a caption or
    description per sequence, plus the attribute losses of the head in use."""
    device = features.device
    loss_fn = objective["loss"]
    positives = None
    if captions is not None:
        targets, pos = captions.sample(train_set, batch, rng, cfg.descriptions_per_step)
        positives = torch.from_numpy(pos).to(device)
    else:
        targets = _text_targets(train_set, batch, cfg.descriptions_per_step, rng)
    text = torch.from_numpy(targets).to(device)
    keys = [train_set.keys[i] for i in batch]
    motion = encoder.embed_features(features)
    # Only the InfoNCE loss takes a positives mask (captions are used with it alone).
    extra = {"positives": positives} if positives is not None else {}
    loss = loss_fn(motion, text, keys, **extra)
    if "heads" in objective:
        loss = loss + cfg.attribute_weight * objective["heads"](features, batch_codes)
    sizes = encoder.attribute_sizes
    if sizes:
        loss = loss + cfg.attribute_weight * attribute_ce(
            encoder.group_logits(features), batch_codes
        )
        # The probability -> text map also learns from the true attribute sets.
        clean = encoder.attribute_map(one_hot_attributes(batch_codes, sizes))
        loss = loss + loss_fn(clean, text, keys, **extra)
    return loss


# Query-head temperatures tried on the validation queries after training (first = default).
QUERY_TEMPERATURES = (0.25, 0.1, 0.5, 1.0)


def _prepare_attribute_space(
    encoder: MotionEncoder,
    captions: CaptionTargets,
    codes: np.ndarray,
    cfg: TrainConfig,
    log: Callable[[str], None],
) -> None:
    """Set the log prior from the training labels and fit the query head on the captions."""
    from gaitsearch.model.query_head import train_query_head

    priors = []
    for g, n in enumerate(encoder.attribute_sizes):
        known = codes[:, g][codes[:, g] >= 0]
        counts = np.bincount(known, minlength=n).astype(np.float64) + 1.0
        priors.append(np.log(counts / counts.sum()))
    prior = torch.tensor(np.concatenate(priors), dtype=torch.float32)
    encoder.attribute_log_prior.copy_(prior.to(encoder.attribute_log_prior.device))
    head = encoder.query_head
    with torch.enable_grad():
        loss = train_query_head(
            head.cpu(), captions.vectors, captions.table.codes, steps=cfg.query_head_steps,
            seed=cfg.seed,
        )  # fmt: skip
    head.to(encoder.attribute_log_prior.device)
    log(
        f"query head fitted on {len(captions.table.texts)} captions "
        f"({cfg.query_head_steps} steps, loss {loss:.3f}); training recognition only"
    )


def _pick_query_temperature(
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
    config.metrics = {**config.metrics, **_metric_summary(scores[chosen])}
    config.training = {**config.training, "query_temperature": chosen}
    save_checkpoint(model.encoder, config, out)
    return float(scores[chosen]["map"])


def _metric_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint's config keeps of a validation result: the flat metrics and the
    random ranking's mAP."""
    summary = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
    if "random" in metrics:
        summary["random_map"] = metrics["random"]["map"]
    return summary


def _keep_best(
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
        save_checkpoint(encoder, checkpoint_config(_metric_summary(metrics)), out)
        log(f"step {step}: loss {loss:.4f}, validation mAP {score:.4f} (best so far, saved {out})")
        return score if metrics else best
    log(f"step {step}: loss {loss:.4f}, validation mAP {score:.4f} (best {best:.4f})")
    return best


STATE_FILE = "state.json"


def _save_state(
    work: Path,
    encoder: MotionEncoder,
    loss_fn: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    elapsed: float,
    best: float,
    history: list[dict[str, Any]],
) -> None:
    tensors = {
        "encoder": encoder.state_dict(),
        "loss": loss_fn.state_dict(),
        "optimizer": optimizer.state_dict(),
    }
    tmp = work / "tensors.pt.tmp"
    torch.save(tensors, tmp)
    tmp.replace(work / "tensors.pt")
    meta = {"step": step, "elapsed": elapsed, "best": best, "history": history}
    (work / (STATE_FILE + ".tmp")).write_text(json.dumps(meta))
    (work / (STATE_FILE + ".tmp")).replace(work / STATE_FILE)


def _load_state(
    work: Path,
    encoder: MotionEncoder,
    loss_fn: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
) -> tuple[int, float, float, list[dict[str, Any]]]:
    meta_path = work / STATE_FILE
    if not meta_path.is_file() or not (work / "tensors.pt").is_file():
        raise FileNotFoundError(f"{work}: no training state to resume from")
    tensors = torch.load(work / "tensors.pt", map_location="cpu", weights_only=True)
    encoder.load_state_dict(tensors["encoder"])
    loss_fn.load_state_dict(tensors["loss"])
    optimizer.load_state_dict(tensors["optimizer"])
    meta = json.loads(meta_path.read_text())
    return int(meta["step"]), float(meta["elapsed"]), float(meta["best"]), list(meta["history"])


class _Progress:
    """A rich progress bar showing loss and sequences per second (or nothing)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._task: Any = None
        self._by_time = False

    def note(self, what: str, done: int, total: int) -> None:
        if self.enabled and (done == total or done % 5000 == 0):
            print(f"{what}: {done}/{total}", flush=True)

    def start(self, total_steps: int | None, budget_s: float | None) -> None:
        if not self.enabled:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._by_time = total_steps is None
        self._bar = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f}" + (" s" if self._by_time else "")),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
        )
        self._bar.start()
        self._task = self._bar.add_task(
            "train", total=budget_s if self._by_time else total_steps, info=""
        )

    def update(self, step: int, elapsed: float, loss: float, rate: float) -> None:
        if self._bar is None:
            return
        self._bar.update(
            self._task,
            completed=elapsed if self._by_time else step,
            info=f"step {step} loss {loss:.4f} {rate:.0f} seq/s",
        )

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
