"""Retrieval quality: our recipe vs the paper's recipe vs a random ranking, in one run.

Both recipes train on the same synthetic training gallery for the same wall-clock budget and
are evaluated on a held-out test gallery generated with another seed, whose queries use
held-out phrasing (``synthesize_gallery`` writes them). Rows:

- ``ours``: the shipped recipe — the "mini" pre-norm transformer trained to recognise the
  attribute vocabulary (per-group cross-entropy), walks stored as attribute log-likelihood
  ratios, queries through a query head fitted on the training captions (the attribute
  search space, model/query_head.py); pelvis centring + body-height scaling, 32 frames at
  12.5 fps, flip/dropout/window augmentation, lr 3e-3.
- ``ours-text``: the previous default in the frozen text space — query-like tagged captions,
  multi-positive InfoNCE, the attribute bottleneck head.
- ``ours-v1``: the first recipe — symmetric InfoNCE with false-negative masking against the
  mean of 3 sampled descriptions, projection head.
- ``paper``: the paper's encoder (12 post-norm layers, d=768, first-token output), triplet
  loss (margin 10, unnormalised L2, negative of a different attribute set), first-joint
  centring, no scale normalisation, 60 frames, AdamW lr 1e-5, weight decay 0.1, batch 128.
- ``paper-loss-small``: ablation — our "small" encoder with the paper's loss and
  preprocessing (shows what the loss and preprocessing alone do at a CPU-sized encoder).
- ``random``: the seeded random ranking computed by the same evaluation.

Prints a JSON document and a markdown table; ``--out`` also writes both to files.

    python benchmarks/quality.py --minutes 4
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from gaitsearch.model.train_recipe import load_recipe  # noqa: E402 (after the env defaults)

# The shipped recipe and the paper's are the recipe files (model/recipes/*.json); the
# ablations are settings on top of them.
_OURS = load_recipe("default").settings
_PAPER = load_recipe("paper").settings
# The paper's alignment: a projection head straight into the text space, no attribute loss.
PAPER_HEAD = {"space": "text", "head": "projection", "attribute_weight": 0.0}
_OURS_ATTRIBUTE_ONLY = ("space", "query_head_steps")
_OURS_SHARED = {k: v for k, v in _OURS.items() if k not in _OURS_ATTRIBUTE_ONLY}
RECIPES: dict[str, dict[str, Any]] = {
    # The default recipe: the attribute search space (recognition + a query head).
    "ours": _OURS,
    # The previous default (ablation): text space, tagged captions, multi-positive InfoNCE,
    # attribute bottleneck head.
    "ours-text": {**_OURS_SHARED, "space": "text", "loss": "infonce"},
    # The first recipe (ablation): own descriptions, one positive, projection head.
    "ours-v1": {
        **_OURS_SHARED, **PAPER_HEAD, "loss": "infonce", "captions": "descriptions",
        "descriptions_per_step": 3,
    },
    "paper": _PAPER,
    # Ablation: the paper's loss and preprocessing with our "small" encoder and lr, with our
    # warm-up and augmentation.
    "paper-loss-small": {
        **{k: v for k, v in _PAPER.items()
           if k not in ("warmup_steps", "flip_p", "dropout_p")},
        "preset": "small", "lr": 1e-3,
    },
}  # fmt: skip


def ensure_gallery(path: Path, count: int, seed: int) -> Path:
    """Generate a synthetic gallery unless one with that many sequences is already there."""
    from gaitsearch.model.gallery import read_metadata
    from gaitsearch.model.synth import synthesize_gallery

    if (path / "metadata.jsonl").is_file() and (path / "queries.jsonl").is_file():
        if len(read_metadata(path)) == count:
            return path
        raise SystemExit(f"error: {path}: exists with a different size; remove it or pick another")
    synthesize_gallery(path, count=count, seed=seed)
    return path


def run_recipe(
    name: str, train_dir: Path, test_dir: Path, work: Path, args: argparse.Namespace, encoder: Any
) -> dict[str, Any]:
    from gaitsearch.model.checkpoint import load_checkpoint
    from gaitsearch.model.evaluate import evaluate
    from gaitsearch.model.query_pipeline import QueryPipeline
    from gaitsearch.model.train import TrainConfig, train

    # Every row shares the run's budget and seed, and no model selection: the test set
    # stays unseen and the last model counts.
    run = dict(
        data=str(train_dir),
        out=str(work / name),
        work_dir=str(work / f"{name}.state"),
        minutes=args.minutes,
        batch_size=128,
        seed=args.seed,
        val_fraction=0.0,
        eval_every=10**9,
        progress=not args.quiet,
        threads=args.threads,
        device=args.device,
    )
    cfg = TrainConfig(**{**RECIPES[name], **run})
    print(f"== {name}: training for {args.minutes} min", file=sys.stderr, flush=True)
    summary = train(cfg, encoder, log=lambda m: print(m, file=sys.stderr))
    model = load_checkpoint(cfg.out)
    t0 = time.perf_counter()
    result = evaluate(
        test_dir, test_dir / "queries.jsonl", QueryPipeline(model, encoder), seed=args.seed
    )
    eval_seconds = time.perf_counter() - t0
    return {
        **encoder_cost(model, test_dir),
        "recipe": RECIPES[name],
        "parameters": summary["parameters"],
        "train_steps": summary["steps"],
        "train_sequences_seen": summary["sequences_seen"],
        "train_seconds": summary["seconds"],
        "train_seq_per_s": round(summary["sequences_seen"] / max(summary["seconds"], 1e-6), 1),
        "eval_seconds": round(eval_seconds, 1),
        "metrics": result,
    }


def encoder_cost(model: Any, test_dir: Path, n: int = 256) -> dict[str, Any]:
    """FLOPs per sequence (torch's counter) and embedding throughput (preprocessing included,
    one batch of ``n`` test sequences after a warm-up) of a trained checkpoint."""
    import torch
    from gaitsearch.model.gallery import iter_gallery
    from gaitsearch.model.preprocess import prepare_batch
    from torch.utils.flop_counter import FlopCounterMode

    pairs = [p for _, p in zip(range(n), iter_gallery(test_dir), strict=False)]
    arrays, fps = [a for _, a in pairs], [r.fps for r, _ in pairs]
    x, mask = prepare_batch(arrays[:8], fps[:8], model.config.preprocess)
    # The fused inference fast path of nn.TransformerEncoder is invisible to the counter.
    torch.backends.mha.set_fastpath_enabled(False)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.encoder(torch.from_numpy(x), torch.from_numpy(mask))
    torch.backends.mha.set_fastpath_enabled(True)
    model.embed_sequences(arrays[:32], fps[:32])  # warm-up
    t0 = time.perf_counter()
    model.embed_sequences(arrays, fps)
    rate = len(arrays) / (time.perf_counter() - t0)
    return {
        "gflop_per_sequence": round(counter.get_total_flops() / 8 / 1e9, 4),
        "embed_seq_per_s": round(rate, 1),
    }


def table(doc: dict[str, Any]) -> str:
    rows = [
        "| recipe | params | GFLOP/seq | embed seq/s | trained (seq) | mAP | R@1 | R@5 | R@10 "
        "| MedR | zero-shot AUC |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def fmt(name: str, cost: str, seen: str, m: dict[str, Any], auc: float | None) -> str:
        auc_s = f"{auc:.3f}" if auc is not None else "–"
        return (
            f"| {name} | {cost} | {seen} | {m['map']:.4f} | {m['recall@1']:.3f} | "
            f"{m['recall@5']:.3f} | {m['recall@10']:.3f} | {m['medr']:.0f} | {auc_s} |"
        )

    first = None
    for name, res in doc["recipes"].items():
        m = res["metrics"]
        first = first or m
        zs = m.get("zero_shot", {})
        rows.append(
            fmt(name, f"{res['parameters'] / 1e6:.2f} M | {res['gflop_per_sequence']:.3f} | "
                f"{res['embed_seq_per_s']:.0f}", f"{res['train_sequences_seen']:,}",
                m, zs.get("auc_mean"))
        )  # fmt: skip
    if first is not None:
        rand_auc = first.get("zero_shot", {}).get("random", {}).get("auc_mean")
        rows.append(fmt("random", "– | – | –", "–", first["random"], rand_auc))
        if first.get("text_oracle"):
            rows.append(fmt("text oracle*", "– | – | –", "–", first["text_oracle"], None))
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="training budget per recipe")
    parser.add_argument("--train-count", type=int, default=10000)
    parser.add_argument("--test-count", type=int, default=1000)
    parser.add_argument("--train-seed", type=int, default=1)
    parser.add_argument("--test-seed", type=int, default=1001)
    parser.add_argument("--seed", type=int, default=0, help="training / random-ranking seed")
    parser.add_argument(
        "--data-dir", type=Path, default=Path("/tmp/gaitsearch-quality"),
        help="where the generated galleries are kept (reused when present)",
    )  # fmt: skip
    parser.add_argument("--recipes", default="ours,ours-text,ours-v1,paper,paper-loss-small")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="write <out>.json and <out>.md")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()

    from gaitsearch.model.text_encoder import load_text_encoder

    names = [n.strip() for n in args.recipes.split(",") if n.strip()]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise SystemExit(f"error: unknown recipe(s) {unknown}; choose from {sorted(RECIPES)}")
    train_dir = ensure_gallery(
        args.data_dir / f"train-{args.train_count}-s{args.train_seed}",
        args.train_count,
        args.train_seed,
    )
    test_dir = ensure_gallery(
        args.data_dir / f"test-{args.test_count}-s{args.test_seed}", args.test_count, args.test_seed
    )
    encoder = load_text_encoder()
    work = args.data_dir / "runs"
    doc: dict[str, Any] = {
        "benchmark": "quality",
        "train": {"dir": str(train_dir), "count": args.train_count, "seed": args.train_seed},
        "test": {"dir": str(test_dir), "count": args.test_count, "seed": args.test_seed},
        "minutes_per_recipe": args.minutes,
        "text_encoder": encoder.describe(),
        "device": args.device,
        "threads": args.threads or os.cpu_count(),
        "recipes": {},
    }
    for name in names:
        doc["recipes"][name] = run_recipe(name, train_dir, test_dir, work, args, encoder)
    base = next(iter(doc["recipes"].values()))["metrics"]
    doc["random"] = base["random"]
    if "ours" in doc["recipes"]:
        ours = doc["recipes"]["ours"]["metrics"]["map"]
        doc["ratios"] = {"ours_vs_random_map": ours / max(base["random"]["map"], 1e-9)}
        if "paper" in doc["recipes"]:
            paper = doc["recipes"]["paper"]["metrics"]["map"]
            doc["ratios"]["ours_vs_paper_map"] = ours / max(paper, 1e-9)
    md = table(doc) + (
        "\n\n*text oracle: each test sequence represented by the text embedding of its own "
        "description (no motion) — a reference for how far the frozen text space separates "
        "the queries' relevant sets."
    )
    print(json.dumps(doc, indent=2))
    print(md)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(md + "\n")


if __name__ == "__main__":
    main()
