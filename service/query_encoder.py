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


class OnnxQueryEncoder:
    """The transformer of a mean/CLS-pooled sentence-transformers model under ONNX Runtime.

    ``precision``: ``fp32`` runs the exported graph with attention, layer norms and GELU fused
    into ONNX Runtime's transformer kernels where its optimizer recognises the model (BERT
    family); ``int8`` additionally quantises the weights (dynamic, per channel) so matrix
    products and attention run as int8 (VNNI/AMX on recent x86).
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
        path = _export(model, self.tokenizer, text_encoder.fingerprint, cache_dir)
        path = _fuse(path, model.config)
        if precision == "int8":
            path = _quantize(path)
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
    path = root / f"text-encoder-{fingerprint}-eager.onnx"
    if path.is_file():
        return path
    root.mkdir(parents=True, exist_ok=True)
    sample = tokenizer(["hello world"], return_tensors="pt")
    if "token_type_ids" not in sample:
        sample["token_type_ids"] = torch.zeros_like(sample["input_ids"])
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    # The plain ("eager") attention exports as the MatMul/Softmax pattern ONNX Runtime's
    # transformer optimizer fuses; the SDPA export does not fuse. Same numbers either way.
    previous = getattr(model.config, "_attn_implementation", None)
    _set_attention(model, "eager")
    try:
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
    finally:
        if previous:
            _set_attention(model, previous)
    tmp.replace(path)
    return path


def _set_attention(model: Any, implementation: str) -> None:
    setter = getattr(model, "set_attn_implementation", None)
    try:
        if setter is not None:
            setter(implementation)
        else:
            model.config._attn_implementation = implementation
    except (ValueError, AttributeError) as exc:  # an architecture without that choice
        log.debug("attention implementation %s not settable: %s", implementation, exc)


def _fuse(path: Path, config: Any) -> Path:
    """ONNX Runtime's transformer fusions (Attention, SkipLayerNorm, ...) for BERT-like
    models; the unfused graph where the optimizer does not apply."""
    out = path.with_name(path.stem + "-fused.onnx")
    if out.is_file():
        return out
    heads = int(getattr(config, "num_attention_heads", 0) or 0)
    hidden = int(getattr(config, "hidden_size", 0) or 0)
    if getattr(config, "model_type", "") not in _FUSABLE or not heads or not hidden:
        return path
    try:
        from onnxruntime.transformers import optimizer

        fused = optimizer.optimize_model(
            str(path), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=1
        )
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        fused.save_model_to_file(str(tmp))
        tmp.replace(out)
    except Exception as exc:  # noqa: BLE001 - an unfused graph is still correct
        log.warning("transformer fusion failed for %s (%s); running it unfused", path.name, exc)
        return path
    return out


_FUSABLE = {"bert", "roberta", "xlm-roberta", "mpnet", "distilbert", "electra"}


def _quantize(path: Path) -> Path:
    """Dynamic int8 weights, per output channel (activations quantised at run time)."""
    out = path.with_name(path.stem + "-int8.onnx")
    if out.is_file():
        return out
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    quantize_dynamic(
        str(path),
        str(tmp),
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    tmp.replace(out)
    return out


def build_query_encoder(
    text_encoder: Any, backend: str = "onnx", cache_dir: Path | None = None, threads: int = 0
) -> TorchQueryEncoder | OnnxQueryEncoder:
    """The fastest encoder allowed by ``backend`` that reproduces ``text_encoder``'s embeddings.

    ``onnx`` must agree with torch to cosine >= 0.999 on the check sentences, ``onnx-int8``
    to >= 0.98 (its recall against the fp32 path is measured in benchmarks/query_encoder.py);
    a failing lean path falls back one step (int8 → fp32 ONNX → torch) and says so in the log.
    """
    reference = TorchQueryEncoder(text_encoder)
    if backend == "torch":
        return reference
    want = reference.encode(list(CHECK_SENTENCES))
    steps = [("int8", MIN_COSINE_INT8)] if backend == "onnx-int8" else []
    for precision, floor in [*steps, ("fp32", MIN_COSINE)]:
        try:
            lean = OnnxQueryEncoder(text_encoder, cache_dir, threads, precision)
            got = lean.encode(list(CHECK_SENTENCES))
            worst = float((want * got).sum(1).min())
        except Exception as exc:  # noqa: BLE001 - any export/runtime problem → next step
            log.warning("ONNX %s query encoder unavailable (%s)", precision, exc)
            continue
        if worst < floor:
            log.warning("ONNX %s query encoder disagrees (cosine %.4f)", precision, worst)
            continue
        log.info("ONNX %s query encoder active (worst cosine to torch %.6f)", precision, worst)
        return lean
    log.warning("using the torch query encoder")
    return reference
