"""The query head of the attribute search space: frozen text embedding → what the query asks.

Why it exists (measured on the synthetic world, README "Attribute search space"): with the
gallery in the text space, a score is *linear* in the frozen query embedding, and no linear
read-out of held-out phrasing separates "names heels" from "names flat shoes" well enough —
the best linear map reached 2.4× random mAP, while ranking the same walks by the posterior of
the query's true predicate reached 6.8×. A per-group softmax over the text embedding (which
value of each attribute group the query names, or "not named") closes much of that gap.

So a checkpoint with ``space="attributes"`` scores a walk ``w`` against a query ``q`` as

    score(q, w) = Σ_groups Σ_values  a(q)[g, v] · (log p(v | w) - log prior(v))

where ``a(q)[g, :]`` is the query head's softmax for group g without its "not named" column
(so a group the query does not name contributes ~0) and ``p(v | w)`` the motion encoder's
recognised attribute distribution. It is an inner product, so the FAISS index and the HTTP
path are unchanged: the gallery stores the log-likelihood ratios, the service runs this head
after the frozen text encoder. The score reads as "how many nats more likely than a typical
walker this walk fits what the query names" (> 0: better than typical).

The head is a single linear layer trained with cross-entropy on the training captions (text
only, held-out phrasing never seen); the frozen text encoder stays frozen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from gaitsearch.model.head_layout import group_layout
from torch import nn


class QueryHead(nn.Module):
    """Linear text embedding → per group logits over its values plus "not named"."""

    def __init__(self, text_dim: int, sizes: Sequence[int], temperature: float = 0.25) -> None:
        super().__init__()
        self.sizes = [int(n) for n in sizes]
        self.temperature = float(temperature)
        self.linear = nn.Linear(text_dim, sum(n + 1 for n in self.sizes))

    def logits(self, text: torch.Tensor) -> list[torch.Tensor]:
        return list(self.linear(text).split([n + 1 for n in self.sizes], dim=-1))

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        """``(B, sum(sizes))``: per group, the probability that the query names each value."""
        return torch.cat(
            [(g / self.temperature).softmax(-1)[:, :-1] for g in self.logits(text)], dim=-1
        )

    def loss(self, text: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over groups; ``codes`` ``(B, G)``, -1 = the group is not named."""
        total = text.new_zeros(())
        for g, (lg, n) in enumerate(zip(self.logits(text), self.sizes, strict=True)):
            target = codes[:, g].long()
            total = total + F.cross_entropy(lg, torch.where(target < 0, n, target))
        return total / len(self.sizes)


def query_vectors_numpy(
    text: np.ndarray, weight: np.ndarray, bias: np.ndarray, sizes: Sequence[int], temperature: float
) -> np.ndarray:
    """:meth:`QueryHead.forward` in numpy for the query path (no torch call per request).

    Probabilities below :data:`FLUSH_BELOW` become exactly 0: a sharp softmax leaves values
    like 1e-40, subnormal floats that made every multiply in the index search ~10x slower
    (17 ms instead of 1.7 ms for an exact search over 217k walks), for a change in scores
    far below anything that could reorder results."""
    logits = (np.asarray(text, dtype=np.float32) @ weight.T + bias) / temperature
    starts, widths, values = group_layout(tuple(int(n) for n in sizes))
    if not len(logits):
        return np.zeros((0, sum(sizes)), dtype=np.float32)
    # All groups in one call each (a loop over groups cost ~0.1 ms per query).
    block = np.exp(logits - np.repeat(np.maximum.reduceat(logits, starts, axis=1), widths, axis=1))
    block /= np.repeat(np.add.reduceat(block, starts, axis=1), widths, axis=1)
    return flush_to_zero(np.ascontiguousarray(block[:, values], dtype=np.float32))


FLUSH_BELOW = 1e-7


def flush_to_zero(vectors: np.ndarray) -> np.ndarray:
    """Zero the entries of non-negative ``vectors`` below :data:`FLUSH_BELOW` (in place)."""
    vectors[vectors < FLUSH_BELOW] = 0.0
    return vectors


def train_query_head(
    head: QueryHead,
    vectors: np.ndarray,
    codes: np.ndarray,
    steps: int = 3000,
    batch_size: int = 512,
    lr: float = 3e-3,
    seed: int = 0,
    on_progress: Callable[[int, float], None] | None = None,
    noise: float = 0.0,
) -> float:
    """Fit ``head`` on caption embeddings ``(N, text_dim)`` and their ``(N, G)`` codes
    (-1 where the caption does not name the group); returns the final loss. The head is
    left frozen (``requires_grad`` off). ``noise``: each step's embeddings get Gaussian
    noise of this norm (in expectation) and are renormalised, so the head also reads the
    neighbourhood of the training phrasings (synonyms it never saw land there)."""
    if len(vectors) == 0:
        raise ValueError("no captions to train the query head on")
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    y = torch.from_numpy(codes.astype(np.int64))
    head.requires_grad_(True)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    head.train()
    value = float("nan")
    for step in range(steps):
        idx = torch.randint(0, len(x), (min(batch_size, len(x)),), generator=gen)
        xb = x[idx]
        if noise > 0:
            xb = xb + noise * torch.randn(xb.shape, generator=gen) / xb.shape[1] ** 0.5
            xb = xb / xb.norm(dim=1, keepdim=True).clamp_min(1e-8)
        loss = head.loss(xb, y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(loss.detach())
        if on_progress and (step + 1) % 500 == 0:
            on_progress(step + 1, value)
    head.eval().requires_grad_(False)  # fitted once; frozen afterwards
    return value
