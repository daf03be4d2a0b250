"""Search latency over a shard list root: shards one after the other (the baseline) vs in
parallel threads, alternating in the same run, one query at a time as the service sends them.

Two query sets: the real query texts of a gallery's ``queries.jsonl`` through the checkpoint's
one query pipeline (sparse: each shard answers them with its column search), and gallery
walks as "more like this" queries (dense: FAISS). Prints JSON (and writes it with ``--out``).

    python benchmarks/shard_search.py --root SERVED --queries GALLERY/queries.jsonl
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


def _time(index: Any, queries: Any, parallel: bool, k: int = 10) -> float:
    index.parallel = parallel
    start = time.perf_counter()
    for q in queries:
        index.search(q[None], k)
    return (time.perf_counter() - start) / len(queries) * 1000.0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="a shard list root")
    parser.add_argument("--queries", type=Path, required=True, help="queries.jsonl")
    parser.add_argument("--count", type=int, default=200, help="queries per set")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import numpy as np
    from gaitsearch.index.shards import load_sharded
    from gaitsearch.model.checkpoint import load_checkpoint, matching_text_encoder
    from gaitsearch.model.query_pipeline import QueryPipeline

    index = load_sharded(args.root)
    model = load_checkpoint()
    texts = []
    with args.queries.open(encoding="utf-8") as fh:
        for line in fh:
            texts.append(json.loads(line)["query"])
            if len(texts) >= args.count:
                break
    sparse = QueryPipeline(model, matching_text_encoder(model)).read(texts)[0]
    sparse = sparse[np.abs(sparse).sum(axis=1) > 0]  # grounded ones (the others get nothing)
    rng = np.random.default_rng(0)
    shard = index.shards[0]
    rows = rng.choice(shard.count, min(args.count, shard.count), replace=False)
    dense = shard.vectors_at(np.sort(rows).astype(np.int64))
    for qs in (sparse, dense):  # warm every shard's caches
        _time(index, qs[:5], True)
        _time(index, qs[:5], False)
    runs = []
    for rnd in range(args.rounds):
        for parallel in (False, True):
            runs.append(
                {
                    "round": rnd,
                    "parallel": parallel,
                    "sparse_ms": round(_time(index, sparse, parallel), 3),
                    "dense_ms": round(_time(index, dense, parallel), 3),
                }
            )
    med = {
        (p, kind): float(np.median([r[kind] for r in runs if r["parallel"] == p]))
        for p in (False, True)
        for kind in ("sparse_ms", "dense_ms")
    }
    doc = {
        "root": str(args.root),
        "shards": len(index.shards),
        "walks": int(index.count),
        "kinds": index.kind,
        "cpus": os.cpu_count(),
        "loadavg_1min": round(os.getloadavg()[0], 2),
        "queries": {"sparse": int(len(sparse)), "dense": int(len(dense))},
        "runs": runs,
        "median_ms": {
            "sparse_sequential": med[(False, "sparse_ms")],
            "sparse_parallel": med[(True, "sparse_ms")],
            "dense_sequential": med[(False, "dense_ms")],
            "dense_parallel": med[(True, "dense_ms")],
        },
    }
    index.close()
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return doc


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
