"""Lean query encoders for the service: the same embeddings as the frozen text encoder, faster.

``torch``: the text encoder's own sentence-transformers path (the reference).
``onnx`` (the default): the transformer exported once to ONNX and run by ONNX Runtime, pooling
and normalising in numpy (~3.7 ms per lone query instead of ~11 ms; ~545 queries/s at batch 32
on two idle cores).
``onnx-int8``: the export with ONNX Runtime's transformer fusions and dynamic int8 weights —
about twice the throughput, but it keeps only 0.72 of the reference's top-10 on the 217k
index, so it is opt-in.
``torch-bf16``: the transformer with its linear layers in bfloat16 (AMX / AVX512-BF16 CPUs
only): top-10 overlap 0.98 and faster in a benchmark loop on one core, but no faster than
``onnx`` inside the service on two cores (measured with benchmarks/load.py), so opt-in too.

``static``: chosen by itself whatever the backend setting, for a static (model2vec) text
encoder (:mod:`gaitsearch.model.static_encoder`, a lean checkpoint): its own ``encode`` is
already the lean path (a tokenizer and a table gather, ~60 µs per query), there is no
transformer to export, and nothing to check it against.

Every lean path is accepted only after a check against the reference on fixed sentences
(cosine >= 0.999; 0.98 for int8); a failing one steps down (int8/bf16 → onnx → torch) and
the log says so. benchmarks/query_encoder.py measures speed, cosine and top-10 overlap.
Rejected: torch dynamic int8 quantisation (worst cosine 0.944); ONNX Runtime's fp32
transformer fusion (no faster than the plain graph here, so it is used only under int8).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gaitsearch.service.onnx_export import export_onnx, fuse_transformer, quantize_int8
from torch import nn

log = logging.getLogger(__name__)

MIN_COSINE = 0.999
MIN_COSINE_INT8 = 0.98
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


def _tokenize(tokenizer: Any, texts: list[str], max_length: int, tensors: str) -> Any:
    """Pad to the longest text of the batch, truncate at the model's maximum length."""
    return tokenizer(
        list(texts), padding=True, truncation=True, max_length=max_length, return_tensors=tensors
    )


def _pool(hidden: np.ndarray, attention_mask: np.ndarray, pooling: str) -> np.ndarray:
    """Mean or CLS pooling, then L2 normalisation (what sentence-transformers does)."""
    if pooling == "cls":
        emb = hidden[:, 0]
    else:
        mask = attention_mask[..., None].astype(np.float32)
        emb = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    return np.ascontiguousarray(emb, dtype=np.float32)


def native_bf16() -> bool:
    """True where the CPU multiplies bfloat16 in hardware (AMX tiles or AVX512-BF16)."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


class _Bf16Linear(nn.Module):
    """A frozen ``nn.Linear`` whose weights are kept in bfloat16: inputs are cast down, the
    product runs on the CPU's bfloat16 units with float32 accumulation, outputs cast back."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.weight = nn.Parameter(linear.weight.detach().to(torch.bfloat16), requires_grad=False)
        bias = linear.bias
        self.bias = (
            None
            if bias is None
            else nn.Parameter(bias.detach().to(torch.bfloat16), requires_grad=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.to(torch.bfloat16), self.weight, self.bias).to(x.dtype)


class TorchBf16QueryEncoder:
    """The sentence-transformers model's transformer with its linear layers in bfloat16.

    Layer norms, softmax and the attention products stay float32. (Autocast gives the same
    numbers but re-casts every weight on each call: ~13 ms of overhead per query.)
    """

    backend = "torch-bf16"

    def __init__(self, text_encoder: Any, threads: int = 0) -> None:
        import copy

        if threads:  # torch's intra-op pool is process-wide: set only when this path is used
            torch.set_num_threads(threads)
        st = text_encoder._model
        self.dim = int(text_encoder.dim)
        self.pooling = str(text_encoder.pooling)
        if self.pooling not in ("mean", "cls"):
            raise RuntimeError(f"pooling {self.pooling!r} is not supported by the bf16 path")
        self.tokenizer = st.tokenizer
        self.max_length = int(st.max_seq_length or 128)
        self.model = copy.deepcopy(st[0].auto_model).eval()
        for module in list(self.model.modules()):
            for name, child in list(module.named_children()):
                if isinstance(child, nn.Linear):
                    setattr(module, name, _Bf16Linear(child))

    def encode(self, texts: list[str]) -> np.ndarray:
        batch = _tokenize(self.tokenizer, texts, self.max_length, "pt")
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        return _pool(hidden.float().numpy(), batch["attention_mask"].numpy(), self.pooling)


class OnnxQueryEncoder:
    """The transformer of a mean/CLS-pooled sentence-transformers model under ONNX Runtime.

    ``precision``: ``fp32`` runs the exported graph (ONNX Runtime's own graph optimisations);
    ``int8`` first fuses attention, layer norms and GELU into ONNX Runtime's transformer
    kernels (BERT family) and quantises the weights (dynamic, per channel), so matrix products
    and attention run as int8 (VNNI/AMX on recent x86).
    """

    backend = "onnx"

    def __init__(
        self,
        text_encoder: Any,
        cache_dir: Path | None = None,
        threads: int = 0,
        precision: str = "fp32",
    ) -> None:
        import onnxruntime as ort

        st = text_encoder._model
        self.dim = int(text_encoder.dim)
        self.pooling = str(text_encoder.pooling)
        if self.pooling not in ("mean", "cls"):
            raise RuntimeError(f"pooling {self.pooling!r} is not supported by the ONNX path")
        if precision not in ("fp32", "int8"):
            raise ValueError(f"precision must be fp32 or int8, not {precision!r}")
        self.tokenizer = st.tokenizer
        self.max_length = int(st.max_seq_length or 128)
        model = st[0].auto_model
        path = export_onnx(model, self.tokenizer, text_encoder.fingerprint, cache_dir)
        if precision == "int8":
            # Fusion first: int8 attention (QAttention) is where the int8 speed comes from.
            # For fp32 the fused graph measured no faster than the plain one, so it is not used.
            path = quantize_int8(fuse_transformer(path, model.config))
            self.backend = "onnx-int8"
        self.path = path
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # No busy-waiting between calls: on a small box the spinning threads would take the
        # CPU the event loop and the index need (measured: p50 21 -> 11 ms on 2 busy cores).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self.session.get_inputs()}

    def encode(self, texts: list[str]) -> np.ndarray:
        batch = _tokenize(self.tokenizer, texts, self.max_length, "np")
        feeds = {k: v.astype(np.int64) for k, v in batch.items() if k in self._inputs}
        hidden = self.session.run(None, feeds)[0]
        return _pool(hidden, batch["attention_mask"], self.pooling)


class StaticQueryEncoder(TorchQueryEncoder):
    """A static text encoder's own ``encode``, as the reference path calls it (the text
    encoder is the lean path)."""

    backend = "static"


QueryEncoderImpl = TorchQueryEncoder | TorchBf16QueryEncoder | OnnxQueryEncoder | StaticQueryEncoder
BACKENDS = ("torch", "torch-bf16", "onnx", "onnx-int8")


def build_query_encoder(
    text_encoder: Any, backend: str = "onnx", cache_dir: Path | None = None, threads: int = 0
) -> QueryEncoderImpl:
    """The fastest encoder allowed by ``backend`` that reproduces ``text_encoder``'s embeddings.

    Candidates are tried in order and the first that agrees with the reference on the check
    sentences is used: ``torch-bf16`` → bf16 (native bf16 CPUs only), ONNX fp32;
    ``onnx-int8`` → int8, ONNX fp32; ``onnx`` → ONNX fp32; then torch. A static text
    encoder is its own lean path (:class:`StaticQueryEncoder`, whatever ``backend`` says).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown encoder backend {backend!r}; choose from {BACKENDS}")
    if getattr(text_encoder, "static", False):
        log.info("static text encoder: its own encode is the query path (backend ignored)")
        return StaticQueryEncoder(text_encoder)
    reference = TorchQueryEncoder(text_encoder)
    if backend == "torch":
        return reference
    want = reference.encode(list(CHECK_SENTENCES))
    candidates: list[tuple[str, float, Callable[[], QueryEncoderImpl]]] = []
    if backend == "torch-bf16":
        if native_bf16():
            candidates.append(
                ("torch-bf16", MIN_COSINE, lambda: TorchBf16QueryEncoder(text_encoder, threads))
            )
        else:
            log.info("no native bfloat16 on this CPU: bf16 query encoder skipped")
    if backend == "onnx-int8":
        candidates.append(
            ("onnx-int8", MIN_COSINE_INT8,
             lambda: OnnxQueryEncoder(text_encoder, cache_dir, threads, "int8"))
        )  # fmt: skip
    candidates.append(
        ("onnx", MIN_COSINE, lambda: OnnxQueryEncoder(text_encoder, cache_dir, threads))
    )
    for name, floor, make in candidates:
        try:
            lean = make()
            got = lean.encode(list(CHECK_SENTENCES))
            worst = float((want * got).sum(1).min())
        except Exception as exc:  # noqa: BLE001 - any export/runtime problem → next step
            log.warning("%s query encoder unavailable (%s)", name, exc)
            continue
        if worst < floor:
            log.warning("%s query encoder disagrees (cosine %.4f)", name, worst)
            continue
        log.info("%s query encoder active (worst cosine to torch %.6f)", name, worst)
        return lean
    log.warning("using the torch query encoder")
    return reference
