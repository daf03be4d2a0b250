"""Static text embeddings: a lean text encoder for the attribute space's query head.

The query head reads a short description ("old man with a cane, seen from the side") and
needs to know which attribute values it names, not to embed the web. A *static* encoder is a
table of one vector per token of the packaged MiniLM's vocabulary, distilled from MiniLM itself
(model2vec's ``distill``: every token passed through the transformer alone, PCA, Zipf/SIF
weighting); a sentence is the mean of its tokens' vectors, L2-normalised. No transformer runs
per query: encoding is tokenising and a gather, tens of microseconds.

- **Format:** a model2vec directory (``config.json`` with ``"model_type": "model2vec"``,
  ``model.safetensors`` holding ``embeddings``, ``tokenizer.json``). Inference needs only
  ``tokenizers``, ``safetensors`` and numpy (model2vec itself is needed to distill, not to
  load): :class:`StaticTextEncoder` reproduces ``StaticModel.encode`` (tokens without special
  tokens, the unknown token dropped, mean, normalise).
- **By name:** :data:`LEAN_TEXT_ENCODER` (``all-MiniLM-L6-v2-static256``) names a recipe, not a
  download: the packaged MiniLM distilled with ``pca_dims=256``, each PCA axis's sign fixed
  (largest-magnitude entry positive; eigenvector signs are otherwise up to the LAPACK build).
  It is built once, offline, into ``$GAITSEARCH_CACHE_DIR/static_encoders/`` (default
  ``~/.cache/gaitsearch/static_encoders/``; about 35 s on two busy cores, 15 MB), or by
  ``gaitsearch lean distill``. Like every text encoder it is identified by its fingerprint
  (the rounded outputs on fixed sentences), so a table that came out differently on another
  machine is refused by the checkpoints fitted on it rather than silently misread.
- **By path:** any local model2vec directory.

Why it is opt-in and what it costs in quality: docs/model.md, "A lean query encoder".
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
from gaitsearch.model.text_encoder import QueryLRU

#: the recipe name of the static encoder distilled from the packaged MiniLM
LEAN_TEXT_ENCODER = "all-MiniLM-L6-v2-static256"
#: name → (teacher, pca_dims, sif_coefficient)
RECIPES: dict[str, tuple[str, int, float]] = {
    LEAN_TEXT_ENCODER: ("all-MiniLM-L6-v2", 256, 1e-4),
}
POOLING = "static-mean"
EMBEDDINGS_KEY = "embeddings"


def static_cache_root() -> Path:
    root = os.environ.get("GAITSEARCH_CACHE_DIR") or str(Path.home() / ".cache" / "gaitsearch")
    return Path(root) / "static_encoders"


def is_static_dir(path: Path | str) -> bool:
    """Whether ``path`` is a model2vec (static embedding) directory."""
    cfg = Path(path) / "config.json"
    if not cfg.is_file() or not (Path(path) / "model.safetensors").is_file():
        return False
    try:
        return json.loads(cfg.read_text()).get("model_type") == "model2vec"
    except (OSError, ValueError):
        return False


def is_static_name(name_or_path: str) -> bool:
    """A static recipe name, or a local model2vec directory."""
    return name_or_path in RECIPES or is_static_dir(name_or_path)


def static_location(name_or_path: str, build: bool = True) -> Path:
    """The directory of a static encoder; a recipe name is distilled on first use."""
    from gaitsearch.model.text_encoder import TextEncoderError

    if name_or_path not in RECIPES:
        if is_static_dir(name_or_path):
            return Path(name_or_path)
        raise TextEncoderError(f"{name_or_path!r} is not a static (model2vec) encoder")
    where = static_cache_root() / name_or_path
    if is_static_dir(where):
        return where
    if not build:
        raise TextEncoderError(f"static encoder {name_or_path!r} is not built yet ({where})")
    return distill_static(name_or_path, where)


_BUILD_LOCK = threading.Lock()


def distill_static(name: str, out: Path | str) -> Path:
    """Distil recipe ``name`` from its (local, packaged) teacher into ``out``; atomic (a
    half-written table is never found by :func:`static_location`)."""
    import shutil
    import tempfile

    from gaitsearch.model.text_encoder import TextEncoderError, resolve_text_encoder

    teacher, pca_dims, sif = RECIPES[name]
    out = Path(out)
    with _BUILD_LOCK:
        if is_static_dir(out):
            return out
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from model2vec.distill import distill
        except ImportError as exc:
            raise TextEncoderError(
                f"building the static encoder {name!r} needs model2vec with its distill "
                "extra (pip install -e '.[lean]'); or give a built model2vec directory"
            ) from exc
        model = distill(
            model_name=resolve_text_encoder(teacher), pca_dims=pca_dims, sif_coefficient=sif,
            device="cpu",
        )  # fmt: skip
        table = canonical_signs(np.asarray(model.embedding, dtype=np.float32))
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=out.parent))
        tmp.chmod(0o755)  # a shared cache: readable like any other built file
        try:
            model.tokenizer.save(str(tmp / "tokenizer.json"))
            write_static(tmp, table, tmp / "tokenizer.json", {"teacher": teacher,
                         "apply_pca": pca_dims, "sif_coefficient": sif})  # fmt: skip
            if is_static_dir(out):  # another process won
                shutil.rmtree(tmp)
            else:
                tmp.replace(out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out


def canonical_signs(table: np.ndarray) -> np.ndarray:
    """Flip each column so that its largest-magnitude entry is positive (PCA axes have no
    sign of their own)."""
    table = np.array(table, dtype=np.float32, copy=True)
    top = table[np.abs(table).argmax(axis=0), np.arange(table.shape[1])]
    table[:, top < 0] *= -1.0
    return table


def write_static(
    path: Path | str,
    table: np.ndarray,
    tokenizer_json: Path | str,
    extra: dict[str, Any] | None = None,
    max_length: int | None = 512,
) -> Path:
    """Write a model2vec directory: float16 ``table`` ``(vocab, dim)`` and a tokenizer."""
    import shutil

    from safetensors.numpy import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if Path(tokenizer_json).resolve() != (path / "tokenizer.json").resolve():
        shutil.copyfile(tokenizer_json, path / "tokenizer.json")
    save_file({EMBEDDINGS_KEY: np.ascontiguousarray(table, dtype=np.float16)},
              str(path / "model.safetensors"))  # fmt: skip
    config = {"model_type": "model2vec", "architectures": ["StaticModel"],
              "hidden_dim": int(table.shape[1]), "normalize": True, "pooling": "mean",
              "max_length": max_length, "embedding_dtype": "float16", **(extra or {})}  # fmt: skip
    (path / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return path


class StaticTextEncoder(QueryLRU):
    """A static (model2vec) text encoder with :class:`~gaitsearch.model.text_encoder.TextEncoder`'s
    interface: ``name``, ``dim``, ``pooling``, ``fingerprint``, ``encode``, ``encode_cached``,
    ``describe``. Outputs are L2-normalised float32."""

    #: the service's query encoder uses :meth:`encode` as it is (no transformer to speed up)
    static = True

    def __init__(self, name_or_path: str, location: Path | str | None = None) -> None:
        from gaitsearch.model.text_encoder import TextEncoderError
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.name = name_or_path
        self.location = Path(location) if location is not None else static_location(name_or_path)
        try:
            config = json.loads((self.location / "config.json").read_text())
            table = load_file(str(self.location / "model.safetensors"))[EMBEDDINGS_KEY]
            self._tokenizer = Tokenizer.from_file(str(self.location / "tokenizer.json"))
        except Exception as exc:  # noqa: BLE001 - one clear message for any broken file
            raise TextEncoderError(
                f"cannot load static text encoder {name_or_path!r} from {self.location}: {exc}"
            ) from exc
        self._table = np.ascontiguousarray(table, dtype=np.float32)
        if self._table.ndim != 2 or self._table.shape[0] != self._tokenizer.get_vocab_size():
            raise TextEncoderError(
                f"{self.location}: embedding table {self._table.shape} does not match the "
                f"tokenizer's {self._tokenizer.get_vocab_size()} tokens"
            )
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self.max_length = config.get("max_length") or None
        self.normalize = bool(config.get("normalize", True))
        unk = self._tokenizer.token_to_id("[UNK]")
        self._unk = -1 if unk is None else int(unk)
        self.dim = int(self._table.shape[1])
        self.pooling = POOLING
        self._init_cache(4096)
        self.fingerprint = self._fingerprint()

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        out = []
        for enc in self._tokenizer.encode_batch_fast(list(texts), add_special_tokens=False):
            ids = [i for i in enc.ids if i != self._unk]
            out.append(ids[: self.max_length] if self.max_length else ids)
        return out

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """``(n, dim)`` float32, L2-normalised (all zeros for a text without known tokens)."""
        del batch_size  # one gather per text; kept for the TextEncoder interface
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, ids in enumerate(self.token_ids(list(texts))):
            if ids:
                out[row] = self._table[ids].mean(axis=0)
        if self.normalize:
            out /= np.linalg.norm(out, axis=1, keepdims=True) + 1e-32
        return out

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "location": str(self.location)}
