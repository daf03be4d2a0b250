"""Text encoder identity, the on-disk description cache, and pinned motion encoder outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gaitsearch.model.embedding_cache import EmbeddingCache
from gaitsearch.model.motion_encoder import MotionEncoder, preset


class CountingEncoder:
    """Wraps the real text encoder and counts the texts it is asked to encode."""

    def __init__(self, inner) -> None:  # noqa: ANN001
        self.inner = inner
        self.dim = inner.dim
        self.fingerprint = inner.fingerprint
        self.encoded: list[str] = []

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        self.encoded.extend(texts)
        return self.inner.encode(texts, batch_size=batch_size)


def test_fingerprint_is_stable_and_describes_the_encoder(text_encoder) -> None:
    assert text_encoder.dim == 384
    assert text_encoder.fingerprint == text_encoder._fingerprint()
    info = text_encoder.describe()
    assert info["fingerprint"] == text_encoder.fingerprint and info["dim"] == 384
    vecs = text_encoder.encode(["a man walking", "a child running"])
    assert vecs.dtype == np.float32 and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)


def test_cache_never_encodes_a_text_twice(tmp_path, text_encoder) -> None:
    counting = CountingEncoder(text_encoder)
    texts = ["a woman in heels", "an old man with a cane", "a woman in heels"]
    with EmbeddingCache(counting, tmp_path / "c.sqlite") as cache:
        first = cache.encode(texts)
        assert counting.encoded == ["a woman in heels", "an old man with a cane"]
        assert np.allclose(first[0], first[2])
    # A new process (new cache object) reads the same file and encodes nothing.
    with EmbeddingCache(counting, tmp_path / "c.sqlite") as cache:
        again = cache.encode(texts + ["a runner"])
        assert counting.encoded[2:] == ["a runner"]
        assert np.allclose(again[:3], first, atol=1e-6)
        assert len(cache) == 3
    # The same texts under another encoder's fingerprint are not served from the cache.
    counting.fingerprint = "another-encoder"
    with EmbeddingCache(counting, tmp_path / "c.sqlite") as cache:
        cache.encode(["a runner"])
        assert counting.encoded[-1] == "a runner" and len(counting.encoded) == 4


def _pinned_encoder() -> tuple[torch.Tensor, torch.Tensor, MotionEncoder]:
    torch.manual_seed(1234)
    enc = MotionEncoder(preset("tiny", out_dim=16, dropout=0.0)).eval()
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 12, 54, generator=g)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 8:] = False
    return x, mask, enc


def test_motion_encoder_output_is_pinned() -> None:
    """open_clip-style regression: a refactor must not silently change embeddings."""
    x, mask, enc = _pinned_encoder()
    with torch.no_grad():
        y = enc(x, mask)
    expected = np.array(
        [[-0.018353, 0.000887, 0.099144, 0.191147, 0.069356, 0.215683],
         [-0.056911, 0.027671, 0.060119, 0.162676, 0.030474, 0.270781]]
    )  # fmt: skip
    np.testing.assert_allclose(y[:, :6].numpy(), expected, atol=2e-5)
    assert float(y.sum()) == pytest.approx(1.7282867, abs=1e-4)


def test_padded_frames_do_not_change_the_embedding() -> None:
    x, mask, enc = _pinned_encoder()
    noisy = x.clone()
    noisy[1, 8:] = 100.0  # garbage in masked frames
    with torch.no_grad():
        a, b = enc(x, mask), enc(noisy, mask)
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_presets_sizes() -> None:
    small = MotionEncoder(preset("small"))
    paper = MotionEncoder(preset("paper"))
    assert small.num_parameters() < 1_000_000 < paper.num_parameters()
    assert paper.config.pooling == "first" and not paper.config.norm_first
    with pytest.raises(ValueError, match="unknown encoder preset"):
        preset("huge")
