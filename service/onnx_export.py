"""The text encoder's transformer exported to ONNX, once per fingerprint, and the graph
rewrites the ``onnx-int8`` query encoder uses (transformer fusion, dynamic int8 weights).

Exports are cached beside each other under ``cache_dir`` (default: the system temp dir),
named by the text encoder's fingerprint, and written atomically (a temp file renamed), so
concurrent servers never read a half-written graph.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)


def export_onnx(model: Any, tokenizer: Any, fingerprint: str, cache_dir: Path | None) -> Path:
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


def fuse_transformer(path: Path, config: Any) -> Path:
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


def quantize_int8(path: Path) -> Path:
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
