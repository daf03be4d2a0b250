"""The attribute space's query head and the model methods around it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gaitsearch.model.query_head import QueryHead, query_vectors_numpy, train_query_head

SIZES = [2, 3, 4]


def test_numpy_path_matches_the_module() -> None:
    torch.manual_seed(0)
    head = QueryHead(16, SIZES, temperature=0.3).eval()
    x = torch.randn(5, 16)
    want = head(x).detach().numpy()
    got = query_vectors_numpy(
        x.numpy(), head.linear.weight.detach().numpy(), head.linear.bias.detach().numpy(),
        SIZES, 0.3,
    )  # fmt: skip
    assert got.shape == (5, sum(SIZES))
    assert np.allclose(got, want, atol=1e-6)
    # A sharp softmax leaves no subnormal floats behind (they slow the index search 10x).
    sharp = query_vectors_numpy(
        x.numpy() * 100, head.linear.weight.detach().numpy(), head.linear.bias.detach().numpy(),
        SIZES, 0.01,
    )  # fmt: skip
    assert not ((sharp > 0) & (sharp < 1e-7)).any() and (sharp == 0).any()
    # Per group, the named-value probabilities sum to at most 1 (the rest is "not named").
    for start, n in zip(np.cumsum([0, *SIZES[:-1]]), SIZES, strict=True):
        assert (got[:, start : start + n].sum(1) <= 1 + 1e-6).all()


def test_training_learns_which_values_a_text_names() -> None:
    rng = np.random.default_rng(0)
    # Text vectors: one direction per (group, value) summed for the values named.
    basis = rng.normal(size=(sum(SIZES), 32)).astype(np.float32)
    codes = np.full((600, len(SIZES)), -1, dtype=np.int8)
    vectors = np.zeros((600, 32), dtype=np.float32)
    offsets = np.cumsum([0, *SIZES[:-1]])
    for i in range(600):
        for g, n in enumerate(SIZES):
            if rng.random() < 0.5:
                codes[i, g] = rng.integers(n)
                vectors[i] += basis[offsets[g] + codes[i, g]]
    vectors += rng.normal(scale=0.1, size=vectors.shape).astype(np.float32)
    head = QueryHead(32, SIZES, temperature=1.0)
    loss = train_query_head(head, vectors[:500], codes[:500], steps=400, batch_size=128)
    assert loss < 0.2
    assert not any(p.requires_grad for p in head.parameters())  # frozen once fitted
    out = head(torch.from_numpy(vectors[500:])).numpy()
    for g, n in enumerate(SIZES):
        block = out[:, offsets[g] : offsets[g] + n]
        named = codes[500:, g] >= 0
        assert (block[named].argmax(1) == codes[500:, g][named]).mean() > 0.9
        assert block[~named].sum(1).mean() < 0.2  # unnamed groups stay near zero


def test_training_needs_captions() -> None:
    with pytest.raises(ValueError, match="no captions"):
        train_query_head(QueryHead(4, SIZES), np.zeros((0, 4)), np.zeros((0, 3)), steps=1)
