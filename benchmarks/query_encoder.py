"""Query encoder paths compared: speed, agreement with the reference, and retrieval kept.

For every backend the service can use (``torch`` = sentence-transformers, the reference;
``onnx`` = the ONNX export under ONNX Runtime; ``onnx-fused`` = that graph after ONNX
Runtime's transformer fusions (measured only); ``onnx-int8`` = fused with int8 weights;
``torch-bf16`` = torch with bfloat16 linear layers, CPUs with native bfloat16 only), in one
run:

- queries/s at batch 1, 8 and 32 (best of 3 interleaved repeats, same threads for all),
- cosine to the torch embedding (worst and mean over the queries),
- top-10 overlap with the torch path's results on a real FAISS index (the fraction of the
  reference top-10 that the backend also returns: recall@10 against the reference).

Queries are the load benchmark's never-seen stream. Prints JSON and a markdown table.

``--lean-checkpoint C`` adds, in the same run, the static encoder of a lean checkpoint
(``gaitsearch lean build``) as row ``static``: its embeddings live in another space, so its
cosine to torch is not comparable (left empty), and its top-10 overlap is its own query head's
top-10 over the same index vectors (walk vectors do not depend on the text encoder in the
attribute space) against the reference's. ``pipeline_ms``: per never-seen query, the whole
text side of a search as the service runs it (encoder, query head, understanding with its word
analysis; one query per call, p50 and p90), for the reference checkpoint on ``onnx`` and the
lean one on ``static``.

    python benchmarks/query_encoder.py --index-dir /work/bench/idx217k_mini
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import ensure_index, query_stream  # noqa: E402


def build_encoders(text_encoder, cache_dir: Path, threads: int) -> dict:
    import onnxruntime as ort
    from gaitsearch.service import query_encoder as qe
    from gaitsearch.service.onnx_export import fuse_transformer

    encoders = {"torch": qe.TorchQueryEncoder(text_encoder)}
    encoders["onnx"] = qe.OnnxQueryEncoder(text_encoder, cache_dir, threads)
    # The fp32 graph after ONNX Runtime's transformer fusions (measured, not used: no faster).
    fused = qe.OnnxQueryEncoder(text_encoder, cache_dir, threads)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    fused_path = fuse_transformer(fused.path, text_encoder._model[0].auto_model.config)
    providers = ["CPUExecutionProvider"]
    fused.session = ort.InferenceSession(str(fused_path), options, providers=providers)
    encoders["onnx-fused"] = fused
    encoders["onnx-int8"] = qe.OnnxQueryEncoder(text_encoder, cache_dir, threads, "int8")
    if qe.native_bf16():
        bf16 = qe.TorchBf16QueryEncoder(text_encoder)
        encoders["torch-bf16"] = bf16
    return encoders


def throughput(encoders: dict, texts: list[str], batch: int, total: int) -> dict[str, float]:
    texts = (texts * (total // max(len(texts), 1) + 1))[:total]  # fewer texts than calls
    best = {name: 0.0 for name in encoders}
    for _ in range(3):
        for name, enc in encoders.items():
            start = time.perf_counter()
            for i in range(0, total, batch):
                enc.encode(texts[i : i + batch])
            best[name] = max(best[name], total / (time.perf_counter() - start))
    return {k: round(v, 1) for k, v in best.items()}


def overlap_at_10(reference, lean, texts: list[str]) -> float:
    """Share of the reference pipeline's top-10 that the lean encoder's pipeline returns
    (both are the one query pipeline, so the query head of the checkpoint is applied)."""
    want = reference.search(texts, 10)
    have = lean.search(texts, 10)
    shares = [
        len({h.id for h in a} & {h.id for h in b}) / max(len(a), 1)
        for a, b in zip(want, have, strict=True)
    ]
    return float(np.mean(shares))


def pipeline_ms(pipeline, texts: list[str]) -> dict[str, float]:
    """p50/p90 ms of :meth:`QueryPipeline.read` for one never-seen text per call."""
    pipeline.read(["warm-up query about a person walking"])
    times = []
    for text in texts:
        start = time.perf_counter()
        pipeline.read([text])
        times.append((time.perf_counter() - start) * 1000)
    return {"p50": round(float(np.percentile(times, 50)), 3),
            "p90": round(float(np.percentile(times, 90)), 3)}  # fmt: skip


def lean_overlap(reference, lean_pipeline, index, texts: list[str]) -> float:
    """The lean checkpoint's top-10 over the reference index's vectors (the same walk vectors:
    the motion encoder is shared) against the reference top-10."""
    want = reference.search(texts, 10)
    vectors, understood = lean_pipeline.read(texts)
    have = index.search(vectors, 10, None)
    shares = [
        len({h.id for h in a} & ({h.id for h in b} if u.grounded else set())) / max(len(a), 1)
        for a, b, u in zip(want, have, understood, strict=True)
    ]
    return float(np.mean(shares))


def markdown(rows: list[dict]) -> str:
    lines = [
        "| backend | q/s b=1 | q/s b=8 | q/s b=32 | worst cos | mean cos | top-10 overlap |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {r['qps_b1']} | {r['qps_b8']} | {r['qps_b32']} "
            + (
                f"| {r['worst_cosine']:.4f} | {r['mean_cosine']:.5f} "
                if r["worst_cosine"] is not None
                else "| – | – "
            )
            + f"| {r['top10_overlap']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index-dir", type=Path, default=Path("/work/bench/idx217k_mini"))
    ap.add_argument("--fallback-count", type=int, default=2000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument(
        "--threads", type=int, default=0, help="threads for every backend (0 = one per core)"
    )
    ap.add_argument("--out", type=Path, default=None, help="Also write the JSON here.")
    ap.add_argument(
        "--lean-checkpoint", type=Path, default=None,
        help="Also measure this lean checkpoint's static encoder (gaitsearch lean build).",
    )  # fmt: skip
    ap.add_argument("--skip", default="", help="Comma-separated backends not to measure.")
    args = ap.parse_args()

    from gaitsearch.index.loaded_index import load_index
    from gaitsearch.index.retriever import Retriever
    from gaitsearch.model.checkpoint import load_checkpoint
    from gaitsearch.model.text_encoder import load_text_encoder

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="gaitsearch-qe-"))
    index_dir, note = ensure_index(args.index_dir, work, args.fallback_count, None)
    index = load_index(index_dir)
    text_encoder = load_text_encoder()
    encoders = build_encoders(text_encoder, work / "onnx", args.threads)
    for name in filter(None, args.skip.split(",")):
        encoders.pop(name, None)
    lean_pipeline = None
    if args.lean_checkpoint is not None:
        from gaitsearch.index.retriever import text_encoder_for
        from gaitsearch.model.query_pipeline import QueryPipeline
        from gaitsearch.service.query_encoder import build_query_encoder

        lean_model = load_checkpoint(args.lean_checkpoint)
        static = build_query_encoder(text_encoder_for(lean_model), "onnx")
        encoders["static"] = static
        lean_pipeline = QueryPipeline(lean_model, static.text_encoder, encode_texts=static.encode)
    _, _, unique = query_stream(11)
    texts = unique[: args.queries]

    ref = encoders["torch"].encode(texts)
    model = load_checkpoint(index.manifest.checkpoint_path or None)
    reference = Retriever(model, text_encoder, index)
    rows = []
    speed = {b: throughput(encoders, texts, b, 96 if b == 1 else 512) for b in (1, 8, 32)}
    for name, enc in encoders.items():
        if name == "static":
            rows.append(
                {
                    "backend": name,
                    "qps_b1": speed[1][name],
                    "qps_b8": speed[8][name],
                    "qps_b32": speed[32][name],
                    "worst_cosine": None,
                    "mean_cosine": None,
                    "top10_overlap": lean_overlap(reference, lean_pipeline, index, texts),
                }
            )
            continue
        got = np.concatenate([enc.encode(texts[i : i + 32]) for i in range(0, len(texts), 32)])
        cos = (ref * got).sum(1)
        rows.append(
            {
                "backend": name,
                "qps_b1": speed[1][name],
                "qps_b8": speed[8][name],
                "qps_b32": speed[32][name],
                "worst_cosine": float(cos.min()),
                "mean_cosine": float(cos.mean()),
                "top10_overlap": overlap_at_10(
                    reference, Retriever(model, text_encoder, index, encode_texts=enc.encode), texts
                ),
            }
        )
    from gaitsearch.model.query_pipeline import QueryPipeline

    fresh = unique[args.queries : args.queries + 200]  # never read by anything above
    pipelines = {}
    if "onnx" in encoders:
        onnx_enc = encoders["onnx"].encode
        pipelines["onnx"] = pipeline_ms(
            QueryPipeline(model, text_encoder, encode_texts=onnx_enc), fresh[:100]
        )
    if lean_pipeline is not None:
        pipelines["static"] = pipeline_ms(lean_pipeline, fresh[100:])
    result = {
        "index": {"dir": str(index_dir), "count": index.count, "kind": index.kind},
        "lean_checkpoint": str(args.lean_checkpoint) if args.lean_checkpoint else None,
        "pipeline_ms": pipelines,
        "note": note,
        "cpus": os.cpu_count(),
        "queries": len(texts),
        "rows": rows,
    }
    text = json.dumps(result, indent=2)
    print(text)
    print()
    print(markdown(rows))
    for name, ms in pipelines.items():
        print(f"pipeline {name}: p50 {ms['p50']} ms, p90 {ms['p90']} ms per never-seen query")
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
