"""Lean query encoders for the service: the same embeddings as the frozen text encoder, faster.

``torch``: the text encoder's own sentence-transformers path (the reference).
``onnx``: the transformer exported once to ONNX and run by ONNX Runtime, pooling and
normalising in numpy. Measured on 2 cores: ~2.6 ms per short query instead of ~7.7 ms, cosine
to the torch path >= 0.9999. It is accepted only after that check (on the fingerprint sentences
and a few queries); otherwise the service falls back to torch and says so in the log.
Rejected: torch dynamic int8 quantisation (worst cosine to the reference 0.944) and ONNX
Runtime dynamic int8 (cosine 0.992 and no faster than fp32 ONNX on this CPU).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MIN_COSINE = 0.999
CHECK_SENTENCES = (
    "woman in heels walking briskly",
    "an old man walking slowly with a cane",
    "a tired child with a backpack, seen from the back",
    "someone texting while walking",
)


class TorchQueryEncoder:
    """The reference path: ``TextEncoder.encode`` (sentence-transformers)."""

    backend = "torch"

    def __init__(self, text_encoder: Any) -> None:
        self.text_encoder = text_encoder
        self.dim = int(text_encoder.dim)

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.text_encoder.encode(list(texts))


class OnnxQueryEncoder:
    """The transformer of a mean/CLS-pooled sentence-transformers model under ONNX Runtime."""

    backend = "onnx"

    def __init__(self, text_encoder: Any, cache_dir: Path | None = None, threads: int = 0) -> None:
        import onnxruntime as ort

        st = text_encoder._model
        self.dim = int(text_encoder.dim)
        self.pooling = str(text_encoder.pooling)
        if self.pooling not in ("mean", "cls"):
            raise RuntimeError(f"pooling {self.pooling!r} is not supported by the ONNX path")
        self.tokenizer = st.tokenizer
        self.max_length = int(st.max_seq_length or 128)
        path = _export(st[0].auto_model, self.tokenizer, text_encoder.fingerprint, cache_dir)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # No busy-waiting between calls: on a small box the spinning threads would take the
        # CPU the event loop and the index need (measured: p50 21 -> 11 ms on 2 busy cores).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self.session.get_inputs()}

    def encode(self, texts: list[str]) -> np.ndarray:
        batch = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="np",
        )
        feeds = {k: v.astype(np.int64) for k, v in batch.items() if k in self._inputs}
        hidden = self.session.run(None, feeds)[0]
        if self.pooling == "cls":
            emb = hidden[:, 0]
        else:
            mask = batch["attention_mask"][..., None].astype(np.float32)
            emb = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
        emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(emb, dtype=np.float32)


def _export(model: Any, tokenizer: Any, fingerprint: str, cache_dir: Path | None) -> Path:
    import torch

    names = ["input_ids", "attention_mask", "token_type_ids"]

    class _Hidden(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    root = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "gaitsearch-onnx"
    path = root / f"text-encoder-{fingerprint}.onnx"
    if path.is_file():
        return path
    root.mkdir(parents=True, exist_ok=True)
    sample = tokenizer(["hello world"], return_tensors="pt")
    if "token_type_ids" not in sample:
        sample["token_type_ids"] = torch.zeros_like(sample["input_ids"])
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.onnx.export(
        _Hidden(model).eval(),
        tuple(sample[n] for n in names),
        str(tmp),
        input_names=names,
        output_names=["last_hidden_state"],
        dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
        opset_version=17,
        dynamo=False,
    )
    tmp.replace(path)
    return path


def build_query_encoder(
    text_encoder: Any, backend: str = "onnx", cache_dir: Path | None = None, threads: int = 0
) -> TorchQueryEncoder | OnnxQueryEncoder:
    """The fastest encoder that reproduces ``text_encoder``'s embeddings (cosine >= 0.999)."""
    reference = TorchQueryEncoder(text_encoder)
    if backend == "torch":
        return reference
    try:
        lean = OnnxQueryEncoder(text_encoder, cache_dir, threads)
        want = reference.encode(list(CHECK_SENTENCES))
        got = lean.encode(list(CHECK_SENTENCES))
        worst = float((want * got).sum(1).min())
    except Exception as exc:  # noqa: BLE001 - any export/runtime problem → the torch path
        log.warning("ONNX query encoder unavailable (%s); using the torch path", exc)
        return reference
    if worst < MIN_COSINE:
        log.warning("ONNX query encoder disagrees (cosine %.4f); using the torch path", worst)
        return reference
    log.info("ONNX query encoder active (worst cosine to torch %.6f)", worst)
    return lean
