"""False-negative masking and the three named losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from gaitsearch.model.losses import (
    AttributeHeads,
    InfoNCELoss,
    MSELoss,
    TripletLoss,
    false_negative_mask,
    make_loss,
    multi_positive_nce,
)


def _unit(*rows: list[float]) -> torch.Tensor:
    return F.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


def test_mask_marks_equal_attribute_sets_and_near_duplicate_texts() -> None:
    text = _unit([1, 0, 0], [0, 1, 0], [0, 1, 0.01], [0, 0, 1])
    mask = false_negative_mask(["a", "b", "c", "a"], text, threshold=0.95)
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[0, 3] = expected[3, 0] = True  # same attribute key
    expected[1, 2] = expected[2, 1] = True  # near-duplicate descriptions
    assert torch.equal(mask, expected)


def test_infonce_ignores_masked_pairs() -> None:
    """Moving a sequence onto a false negative's text costs nothing once it is masked."""
    loss = InfoNCELoss(temperature=0.1, threshold=1.0)
    text = _unit([1, 0, 0], [0, 1, 0], [0, 0, 1])
    close = text.clone()
    confused = text.clone()
    confused[0] = F.normalize(text[0] + text[1], dim=0)  # item 0 looks like item 1's text
    unmasked = loss(confused, text, ["x", "y", "z"]) - loss(close, text, ["x", "y", "z"])
    assert unmasked > 0.1
    # With items 0 and 1 sharing an attribute set, only the positive's similarity matters.
    logits = confused @ text.T / 0.1
    logits[0, 1] = logits[1, 0] = float("-inf")
    target = torch.arange(3)
    manual = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    assert loss(confused, text, ["x", "x", "z"]).item() == pytest.approx(manual.item(), rel=1e-5)


def test_infonce_temperature_is_learnable() -> None:
    loss = InfoNCELoss(temperature=0.07)
    assert loss.temperature == pytest.approx(0.07, rel=1e-4)
    text = _unit([1, 0], [0, 1])
    out = loss(torch.randn(2, 2, requires_grad=True), text)
    out.backward()
    assert loss.logit_scale.grad is not None


def test_triplet_negative_has_a_different_attribute_set() -> None:
    torch.manual_seed(0)
    text = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 30.0]])
    motion = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 30.0]])
    # Items 0 and 1 share a set: each one's only legal negative is item 2, far away -> 0 loss.
    assert TripletLoss(margin=10.0)(motion, text, ["a", "a", "b"]).item() == 0.0
    # Treating them as different sets makes 0 and 1 each other's (identical) negatives:
    # every row has d_pos = d_neg for at least one choice, so some margin violation appears.
    values = [TripletLoss(margin=10.0)(motion, text, ["a", "c", "b"]).item() for _ in range(20)]
    assert max(values) > 0.0
    assert TripletLoss()(motion, text, ["a", "a", "a"]).item() == 0.0  # no negative at all


def test_mse_and_factory() -> None:
    a = torch.zeros(2, 3)
    b = torch.ones(2, 3)
    assert MSELoss()(a, b).item() == pytest.approx(1.0)
    assert isinstance(make_loss("triplet", margin=2.0), TripletLoss)
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss("hinge")


def test_multi_positive_nce_rewards_every_walker_a_caption_fits() -> None:
    # Caption 0 ("a woman") fits walkers 0 and 1; caption 1 only walker 1; caption 2 walker 2.
    positives = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.bool)
    text = _unit([1, 0, 0], [0, 1, 0], [0, 0, 1])
    apart = _unit([1, 0, 0], [0, 1, 0], [0, 0, 1])
    # Walker 1 next to caption 0 as well as its own caption: better, not punished.
    shared = _unit([1, 0, 0], [0.7, 0.7, 0], [0, 0, 1])
    loss = InfoNCELoss(temperature=0.1)
    assert loss(shared, text, positives=positives) < loss(apart, text, positives=positives)
    # The identity mask is plain symmetric InfoNCE.
    eye = torch.eye(3, dtype=torch.bool)
    logits = torch.randn(3, 3)
    target = torch.arange(3)
    plain = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    assert multi_positive_nce(logits, eye).item() == pytest.approx(plain.item(), rel=1e-5)


def test_attribute_heads_skip_unknown_values() -> None:
    heads = AttributeHeads(4, [2, 3])
    feats = torch.randn(5, 4, requires_grad=True)
    codes = torch.tensor([[0, -1], [1, 2], [-1, -1], [0, 0], [1, 1]])
    out = heads(feats, codes)
    out.backward()
    assert out.item() > 0 and feats.grad is not None
    none_known = heads(feats, torch.full((5, 2), -1))
    assert none_known.item() == 0.0
