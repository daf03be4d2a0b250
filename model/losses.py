"""Training objectives that pull a motion embedding next to its description's embedding.

Three named losses (``LOSSES``):

- ``infonce``: symmetric InfoNCE over the batch with a learnable temperature. In-batch pairs
  that are not really negatives — equal attribute sets, or near-duplicate descriptions by
  text-embedding cosine — are masked out of the denominators (TMR-style filtering). With
  attribute-tagged captions (:mod:`captions`) every sequence a caption applies to is a
  positive instead (multi-positive, SupCon-style).
- ``triplet``: the paper's loss — margin 10 on unnormalised L2 distances between the motion
  embedding and text embeddings; the negative is a caption of a different attribute set.
- ``mse``: mean squared error to the description embedding (the paper's action-recognition
  objective).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("infonce", "triplet", "mse")


def false_negative_mask(
    keys: Sequence[str] | None, text: torch.Tensor, threshold: float = 0.95
) -> torch.Tensor:
    """``(B, B)`` bool, True where pair ``(i, j)``, i != j, must NOT be used as a negative.

    Pairs count as positives-in-disguise if their attribute keys are equal or the cosine of
    their (normalised) description embeddings exceeds ``threshold``.
    """
    b = text.shape[0]
    same = torch.zeros(b, b, dtype=torch.bool, device=text.device)
    if keys is not None:
        codes = {k: i for i, k in enumerate(dict.fromkeys(keys))}
        ids = torch.tensor([codes[k] for k in keys], device=text.device)
        same |= ids[:, None] == ids[None, :]
    if threshold < 1.0:
        t = F.normalize(text, dim=-1)
        same |= (t @ t.T) > threshold
    same.fill_diagonal_(False)
    return same


class InfoNCELoss(nn.Module):
    """Symmetric InfoNCE (CLIP) with learnable temperature and false-negative masking."""

    def __init__(
        self, temperature: float = 0.07, threshold: float = 0.95, max_scale: float = 100.0
    ) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        self.threshold = threshold
        self.max_scale = max_scale

    @property
    def temperature(self) -> float:
        return float(1.0 / self.logit_scale.detach().exp().clamp(max=self.max_scale))

    def forward(
        self,
        motion: torch.Tensor,
        text: torch.Tensor,
        keys: Sequence[str] | None = None,
        positives: torch.Tensor | None = None,
    ) -> torch.Tensor:
        m = F.normalize(motion, dim=-1)
        t = F.normalize(text, dim=-1)
        scale = self.logit_scale.exp().clamp(max=self.max_scale)
        logits = scale * (m @ t.T)
        if positives is not None:
            return multi_positive_nce(logits, positives)
        masked = false_negative_mask(keys, t, self.threshold)
        logits = logits.masked_fill(masked, float("-inf"))
        target = torch.arange(len(m), device=m.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def multi_positive_nce(logits: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE where row i (motion) and column j (caption) may have many positives.

    ``positives[i, j]`` is True when caption j applies to sequence i (the diagonal always
    does). Each row's loss is the mean negative log-softmax over its positives (SupCon);
    likewise for each column over the captions' softmax.
    """
    pos = positives.to(logits.dtype)

    def one_side(lg: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        logp = lg.log_softmax(dim=1)
        return (-(logp * p).sum(1) / p.sum(1).clamp(min=1.0)).mean()

    return 0.5 * (one_side(logits, pos) + one_side(logits.T, pos.T))


class TripletLoss(nn.Module):
    """The paper's loss: ``max(0, |m - t+| - |m - t-| + margin)``, L2 on raw embeddings.

    The negative for item i is the description of another batch item whose attribute set
    differs (chosen at random); items with no such partner are skipped.
    """

    def __init__(self, margin: float = 10.0) -> None:
        super().__init__()
        self.margin = margin

    def forward(
        self, motion: torch.Tensor, text: torch.Tensor, keys: Sequence[str] | None = None
    ) -> torch.Tensor:
        b = motion.shape[0]
        if keys is None:
            keys = [str(i) for i in range(b)]
        codes = {k: i for i, k in enumerate(dict.fromkeys(keys))}
        ids = torch.tensor([codes[k] for k in keys], device=motion.device)
        allowed = (ids[:, None] != ids[None, :]).float()
        has_neg = allowed.sum(1) > 0
        if not bool(has_neg.any()):
            return motion.sum() * 0.0
        # Uniform random choice among allowed partners (rows without one are dropped).
        weights = allowed[has_neg] + 1e-12
        neg_idx = torch.multinomial(weights, 1).squeeze(1)
        m = motion[has_neg]
        pos = text[has_neg]
        neg = text[neg_idx]
        d_pos = (m - pos).norm(dim=-1)
        d_neg = (m - neg).norm(dim=-1)
        return F.relu(d_pos - d_neg + self.margin).mean()


class MSELoss(nn.Module):
    """Regress the motion embedding onto the description embedding."""

    def forward(
        self, motion: torch.Tensor, text: torch.Tensor, keys: Sequence[str] | None = None
    ) -> torch.Tensor:
        return F.mse_loss(motion, text)


def attribute_ce(logits: Sequence[torch.Tensor], codes: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over attribute groups; ``codes`` ``(B, G)`` value indices, -1 where
    the value is unknown (ignored; a group nobody in the batch knows is skipped)."""
    losses = []
    for g, lg in enumerate(logits):
        target = codes[:, g].long()
        if bool((target >= 0).any()):
            losses.append(F.cross_entropy(lg, target, ignore_index=-1))
    return torch.stack(losses).mean() if losses else logits[0].sum() * 0.0


def one_hot_attributes(codes: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """``(B, sum(sizes))``: known values one-hot, unknown groups uniform."""
    parts = []
    for g, n in enumerate(sizes):
        c = codes[:, g].long()
        part = F.one_hot(c.clamp(min=0), n).float()
        part[c < 0] = 1.0 / n
        parts.append(part)
    return torch.cat(parts, dim=-1)


class AttributeHeads(nn.Module):
    """Training-only auxiliary classifiers for the projection head: one softmax per attribute
    group over pooled features, not saved in the checkpoint. (The attribute bottleneck head
    of :mod:`motion_encoder` has its own, kept ones.)"""

    def __init__(self, d_model: int, groups: Sequence[int]) -> None:
        super().__init__()
        self.sizes = list(groups)
        self.linear = nn.Linear(d_model, sum(self.sizes))

    def forward(self, features: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        return attribute_ce(self.linear(features).split(self.sizes, dim=-1), codes)


def make_loss(name: str, **options: float) -> nn.Module:
    """``infonce`` (options: temperature, threshold), ``triplet`` (margin) or ``mse``."""
    if name == "infonce":
        return InfoNCELoss(**options)
    if name == "triplet":
        return TripletLoss(**options)
    if name == "mse":
        return MSELoss()
    raise ValueError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)}")
