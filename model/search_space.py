"""Search spaces: what a checkpoint's index vectors and query vectors mean.

A checkpoint scores a walk against a query by the inner product of two vectors. What those
vectors are depends on the space the checkpoint was trained for, and everything that differs
between spaces lives here, in one class per space, chosen once from the checkpoint config by
:func:`space_for`:

- :class:`TextSpace` (the paper's): walks are L2-normalised points in the frozen text
  encoder's space; a query is its own normalised text embedding; the score is a cosine.
- :class:`AttributeSpace` (the shipped default): walks are attribute log-likelihood ratios,
  a query is the query head's reading of what it names (see :mod:`gaitsearch.model.query_head`);
  the score is the log-likelihood ratio, in nats, of what the query names.

A third space is one new subclass registered in :data:`SPACES`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from gaitsearch.model.query_head import QueryHead, flush_to_zero, query_vectors_numpy
from torch import nn

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from gaitsearch.model.motion_encoder import MotionEncoder, MotionEncoderConfig
    from gaitsearch.model.train_data import CaptionTargets, TrainingBatch


class SearchSpace:
    """One search space, bound to a motion encoder (for the weights a space reads)."""

    name: ClassVar[str] = ""
    #: whether label prototypes (means of phrase vectors) are renormalised before scoring
    normalise_prototypes: ClassVar[bool] = False

    def __init__(self, encoder: MotionEncoder) -> None:
        self.encoder = encoder

    # -- the motion encoder's side (class methods: they run while the encoder is built) --
    @classmethod
    def build_heads(cls, encoder: MotionEncoder, config: MotionEncoderConfig) -> None:
        """Add the modules that map pooled features into this space to ``encoder``."""
        raise NotImplementedError

    @classmethod
    def project(cls, encoder: MotionEncoder, features: torch.Tensor) -> torch.Tensor:
        """Pooled ``(B, d_model)`` features → ``(B, dim)`` (before :meth:`gallery_vectors`)."""
        raise NotImplementedError

    # -- training (class methods: they work on the encoder being trained) --
    #: whether training needs sequences labelled with the attribute vocabulary
    needs_attributes: ClassVar[bool] = False
    #: whether the space has a query temperature worth picking on validation queries
    picks_query_temperature: ClassVar[bool] = False

    @classmethod
    def wants_captions(cls, loss: str, captions: str) -> bool:
        """Whether training uses the attribute-tagged captions (else descriptions only)."""
        raise NotImplementedError

    @classmethod
    def encoder_options(
        cls, text_dim: int, vocabulary: dict[str, list[str]] | None, query_temperature: float
    ) -> dict[str, Any]:
        """The motion encoder config's fields this space sets."""
        raise NotImplementedError

    @classmethod
    def freeze_for_training(cls, encoder: MotionEncoder) -> None:
        """Exclude what the training loop must not update (before the optimizer is built)."""

    @classmethod
    def prepare_training(
        cls,
        encoder: MotionEncoder,
        captions: CaptionTargets | None,
        codes: np.ndarray,
        query_head_steps: int,
        seed: int,
        log: Callable[[str], None],
    ) -> None:
        """Fit what is fitted once, before the loop (not on resume)."""

    @classmethod
    def training_loss(cls, encoder: MotionEncoder, step: TrainingBatch) -> torch.Tensor:
        """The loss of one training batch."""
        raise NotImplementedError

    @property
    def dim(self) -> int:
        return int(self.encoder.config.out_dim)

    @property
    def text_dim(self) -> int | None:
        """The text-embedding width this space reads queries from (None: any)."""
        return None

    def gallery_vectors(self, encoded: torch.Tensor) -> torch.Tensor:
        """The motion encoder's output ``(B, dim)`` → the vectors stored in the index."""
        raise NotImplementedError

    def query_vectors(self, text_vectors: np.ndarray) -> np.ndarray:
        """Frozen text embeddings ``(n, text_dim)`` → query vectors ``(n, dim)``."""
        raise NotImplementedError

    def example_vectors(self, gallery_vectors: np.ndarray) -> np.ndarray:
        """Gallery vectors of example walks → query vectors for "more like this"."""
        raise NotImplementedError

    def complete_walks(
        self, encoded: np.ndarray, sequences: Sequence[np.ndarray], fps: Sequence[float]
    ) -> np.ndarray:
        """The index rows of a batch: the encoder's part, plus what this space measures on
        the raw keypoints (nothing by default)."""
        return encoded

    def finish_queries(self, query_vectors: np.ndarray) -> np.ndarray:
        """Query vectors after their learned part was restricted to what was understood:
        parts derived from it are recomputed (nothing by default)."""
        return query_vectors

    def pool_prototypes(self, vectors: np.ndarray, counts: list[int]) -> np.ndarray:
        """Consecutive runs of ``counts`` query vectors averaged into one label prototype each
        (renormalised where the space scores cosines)."""
        rows, start = [], 0
        for n in counts:
            proto = np.asarray(vectors[start : start + n], dtype=np.float32).mean(0)
            if self.normalise_prototypes:
                proto = proto / max(float(np.linalg.norm(proto)), 1e-8)
            rows.append(proto)
            start += n
        return np.stack(rows).astype(np.float32)

    def _check_text(self, text_vectors: np.ndarray) -> np.ndarray:
        text_vectors = np.asarray(text_vectors, dtype=np.float32)
        if text_vectors.ndim != 2:
            raise ValueError(f"text vectors must be 2-D, got shape {text_vectors.shape}")
        want = self.text_dim
        if want is not None and text_vectors.shape[1] != want:
            raise ValueError(
                f"text vectors have dim {text_vectors.shape[1]}, the {self.name} space of this "
                f"checkpoint reads {want}-d text embeddings"
            )
        return text_vectors


class TextSpace(SearchSpace):
    """Walks and queries in the frozen text encoder's space; scores are cosines."""

    name = "text"
    normalise_prototypes = True

    @classmethod
    def build_heads(cls, encoder: MotionEncoder, config: MotionEncoderConfig) -> None:
        """The paper's projection MLP, or (with a vocabulary) the attribute bottleneck: one
        softmax per group, then an MLP from those probabilities into the text space."""
        if not encoder.attribute_sizes:
            encoder.head = nn.Sequential(
                nn.Linear(config.d_model, config.d_model),
                nn.GELU(),
                nn.Linear(config.d_model, config.out_dim),
            )
            return
        if any(n < 2 for n in encoder.attribute_sizes):
            raise ValueError("every attribute group needs at least two values")
        n = sum(encoder.attribute_sizes)
        encoder.attribute_logits = nn.Linear(config.d_model, n)
        encoder.attribute_map = nn.Sequential(
            nn.Linear(n, config.attribute_hidden),
            nn.GELU(),
            nn.Linear(config.attribute_hidden, config.out_dim),
        )

    @classmethod
    def project(cls, encoder: MotionEncoder, features: torch.Tensor) -> torch.Tensor:
        if encoder.attribute_sizes:
            mapped: Any = encoder.attribute_map
            return mapped(encoder.attribute_probabilities(features))  # type: ignore[no-any-return]
        head: Any = encoder.head
        return head(features)  # type: ignore[no-any-return]

    @classmethod
    def wants_captions(cls, loss: str, captions: str) -> bool:
        return captions == "attributes" and loss == "infonce"  # positives mask: InfoNCE only

    @classmethod
    def encoder_options(
        cls, text_dim: int, vocabulary: dict[str, list[str]] | None, query_temperature: float
    ) -> dict[str, Any]:
        return {"out_dim": text_dim}

    @classmethod
    def training_loss(cls, encoder: MotionEncoder, step: TrainingBatch) -> torch.Tensor:
        """The configured alignment loss against a caption or description per sequence,
        plus the attribute losses of the head in use."""
        from gaitsearch.model.losses import attribute_ce, one_hot_attributes
        from gaitsearch.model.train_data import description_targets

        features, batch, data = step.features, step.batch, step.data
        device = features.device
        loss_fn = step.objective["loss"]
        positives = None
        if step.captions is not None:
            targets, pos = step.captions.sample(data, batch, step.rng, step.descriptions_per_step)
            positives = torch.from_numpy(pos).to(device)
        else:
            targets = description_targets(data, batch, step.descriptions_per_step, step.rng)
        text = torch.from_numpy(targets).to(device)
        keys = [data.keys[i] for i in batch]
        motion = encoder.embed_features(features)
        # Only the InfoNCE loss takes a positives mask (captions are used with it alone).
        extra = {"positives": positives} if positives is not None else {}
        loss = loss_fn(motion, text, keys, **extra)
        if "heads" in step.objective:
            loss = loss + step.attribute_weight * step.objective["heads"](features, step.codes)
        sizes = encoder.attribute_sizes
        if sizes:
            loss = loss + step.attribute_weight * attribute_ce(
                encoder.group_logits(features), step.codes
            )
            # The probability -> text map also learns from the true attribute sets.
            clean = encoder.attribute_map(one_hot_attributes(step.codes, sizes))
            loss = loss + loss_fn(clean, text, keys, **extra)
        return loss  # type: ignore[no-any-return]

    @property
    def text_dim(self) -> int | None:
        return int(self.encoder.config.out_dim)

    def gallery_vectors(self, encoded: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(encoded, dim=-1)

    def query_vectors(self, text_vectors: np.ndarray) -> np.ndarray:
        text_vectors = self._check_text(text_vectors)
        norms = np.linalg.norm(text_vectors, axis=1, keepdims=True)
        return (text_vectors / np.maximum(norms, 1e-8)).astype(np.float32)

    def example_vectors(self, gallery_vectors: np.ndarray) -> np.ndarray:
        return np.asarray(gallery_vectors, dtype=np.float32)


class AttributeSpace(SearchSpace):
    """Walks as attribute log-likelihood ratios, queries as the query head's named values."""

    name = "attributes"

    @classmethod
    def build_heads(cls, encoder: MotionEncoder, config: MotionEncoderConfig) -> None:
        """Per-group attribute logits, the log prior per value, and the query head."""
        sizes = encoder.attribute_sizes
        n = sum(sizes)
        if not sizes or any(k < 2 for k in sizes):
            raise ValueError("the attribute space needs a vocabulary of groups with 2+ values")
        if config.out_dim != n or not config.text_dim:
            raise ValueError(
                f"the attribute space needs out_dim = {n} (vocabulary size) and a text_dim"
            )
        encoder.attribute_logits = nn.Linear(config.d_model, n)
        # log prior(value) per group (uniform here), subtracted from log p(value).
        prior = torch.cat([torch.full((k,), -math.log(k)) for k in sizes])
        encoder.register_buffer("attribute_log_prior", prior)
        encoder.query_head = QueryHead(config.text_dim, sizes, config.query_temperature)

    @classmethod
    def project(cls, encoder: MotionEncoder, features: torch.Tensor) -> torch.Tensor:
        """``log p(value | walk) - log prior(value)`` per group, side by side."""
        log_p = torch.cat([g.log_softmax(-1) for g in encoder.group_logits(features)], dim=-1)
        prior: torch.Tensor = encoder.attribute_log_prior  # type: ignore[assignment]
        return log_p - prior

    needs_attributes = True
    picks_query_temperature = True

    @classmethod
    def wants_captions(cls, loss: str, captions: str) -> bool:
        return True  # the query head is fitted on them

    @classmethod
    def encoder_options(
        cls, text_dim: int, vocabulary: dict[str, list[str]] | None, query_temperature: float
    ) -> dict[str, Any]:
        return {
            "space": cls.name,
            "out_dim": sum(len(v) for v in (vocabulary or {}).values()),
            "text_dim": text_dim,
            "query_temperature": query_temperature,
        }

    @classmethod
    def freeze_for_training(cls, encoder: MotionEncoder) -> None:
        encoder.query_head.requires_grad_(False)  # fitted on captions, not by the loop

    @classmethod
    def prepare_training(
        cls,
        encoder: MotionEncoder,
        captions: CaptionTargets | None,
        codes: np.ndarray,
        query_head_steps: int,
        seed: int,
        log: Callable[[str], None],
    ) -> None:
        """Set the log prior from the training labels and fit the query head on the captions."""
        from gaitsearch.model.query_head import train_query_head

        if captions is None:
            return
        priors = []
        for g, n in enumerate(encoder.attribute_sizes):
            known = codes[:, g][codes[:, g] >= 0]
            counts = np.bincount(known, minlength=n).astype(np.float64) + 1.0
            priors.append(np.log(counts / counts.sum()))
        prior = torch.tensor(np.concatenate(priors), dtype=torch.float32)
        buffer: torch.Tensor = encoder.attribute_log_prior  # type: ignore[assignment]
        buffer.copy_(prior.to(buffer.device))
        head: Any = encoder.query_head
        with torch.enable_grad():
            loss = train_query_head(
                head.cpu(), captions.vectors, captions.table.codes, steps=query_head_steps,
                seed=seed,
            )  # fmt: skip
        head.to(buffer.device)
        log(
            f"query head fitted on {len(captions.table.texts)} captions "
            f"({query_head_steps} steps, loss {loss:.3f}); training recognition only"
        )

    @classmethod
    def training_loss(cls, encoder: MotionEncoder, step: TrainingBatch) -> torch.Tensor:
        """Recognition is the whole job; the query head was fitted on the captions."""
        from gaitsearch.model.losses import attribute_ce

        return attribute_ce(encoder.group_logits(step.features), step.codes)

    def __init__(self, encoder: MotionEncoder) -> None:
        from gaitsearch.model.measured import MeasuredSpace

        super().__init__(encoder)
        head = encoder.query_head
        # numpy copies: the query path runs no torch call per request
        self._weight = head.linear.weight.detach().numpy().copy()
        self._bias = head.linear.bias.detach().numpy().copy()
        self._prior = encoder.attribute_log_prior.numpy().copy()  # type: ignore[operator]
        self.learned_dim = int(encoder.config.out_dim)
        config = encoder.config
        #: the measured groups after the learned ones (None: a checkpoint without them)
        self.measured = (
            MeasuredSpace.from_config(config.measured, config.attribute_vocabulary or {})
            if config.measured
            else None
        )

    @property
    def dim(self) -> int:
        return self.learned_dim + (self.measured.dim if self.measured else 0)

    @property
    def text_dim(self) -> int | None:
        return int(self._weight.shape[1])

    def gallery_vectors(self, encoded: torch.Tensor) -> torch.Tensor:
        return encoded  # the encoder's attribute head already gives log p(v|w) - log prior(v)

    def complete_walks(
        self, encoded: np.ndarray, sequences: Sequence[np.ndarray], fps: Sequence[float]
    ) -> np.ndarray:
        if self.measured is None:
            return encoded
        return np.concatenate([encoded, self.measured.measure(sequences, fps)], axis=1)

    def query_vectors(self, text_vectors: np.ndarray) -> np.ndarray:
        text_vectors = self._check_text(text_vectors)
        named = query_vectors_numpy(
            text_vectors, self._weight, self._bias, self.encoder.attribute_sizes,
            self.encoder.config.query_temperature,
        )  # fmt: skip
        if self.measured is None:
            return named
        return np.concatenate([named, self.measured.query_part(named)], axis=1)

    def finish_queries(self, query_vectors: np.ndarray) -> np.ndarray:
        if self.measured is None:
            return query_vectors
        out = np.array(query_vectors, dtype=np.float32, copy=True)
        out[:, self.learned_dim :] = self.measured.query_part(out[:, : self.learned_dim])
        return out

    def example_vectors(self, gallery_vectors: np.ndarray) -> np.ndarray:
        """The example's recognised attribute distribution: a gallery walk then scores the
        expected log-likelihood ratio of the example's attributes (so the example itself,
        and walks recognised alike, rank first). Measured groups: the example's measured
        value probabilities (none where its view could not measure them)."""
        gallery_vectors = np.asarray(gallery_vectors, dtype=np.float32)
        learned = gallery_vectors[:, : self.learned_dim]
        out = flush_to_zero(np.exp(learned + self._prior).astype(np.float32))
        if self.measured is None:
            return out
        parts, col = [out], self.learned_dim
        for group, k in zip(self.measured.groups, self.measured.sizes, strict=True):
            llr = gallery_vectors[:, col : col + k].astype(np.float64)
            p = np.exp(llr / max(group.weight, 1e-6)) / k
            p /= p.sum(axis=1, keepdims=True)
            p[~np.any(llr != 0, axis=1)] = 0.0  # not measured: no say in the ranking
            parts.append(p.astype(np.float32))
            col += k
        return np.concatenate(parts, axis=1)


SPACES: dict[str, type[SearchSpace]] = {cls.name: cls for cls in (TextSpace, AttributeSpace)}


def space_for(encoder: MotionEncoder) -> SearchSpace:
    """The search space a motion encoder's config names."""
    name = encoder.config.space
    try:
        return SPACES[name](encoder)
    except KeyError:
        raise ValueError(f"unknown search space {name!r}; known: {', '.join(SPACES)}") from None
