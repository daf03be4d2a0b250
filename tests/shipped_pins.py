"""Pinned outputs of the shipped checkpoint (open_clip-style regression references).

``python tests/shipped_pins.py --write`` regenerates ``tests/data/shipped_pins.json``: do
that only when the shipped checkpoint itself changes on purpose, and say so in the commit.
A refactor must leave these numbers as they are (tests/test_shipped_checkpoint.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PINS = Path(__file__).resolve().parent / "data" / "shipped_pins.json"
QUERIES = [
    "woman in heels walking briskly",
    "an old man walking slowly with a cane",
    "a child with a backpack seen from the back",
]
WALK_SEED, WALK_COUNT = 11, 3


def pinned_walks(root: Path) -> list[tuple[Any, Any]]:
    """Three fixed synthetic walks (the synthetic world is byte-deterministic per seed)."""
    from gaitsearch.model.gallery import iter_gallery
    from gaitsearch.model.synth import synthesize_gallery

    synthesize_gallery(root, count=WALK_COUNT, seed=WALK_SEED)
    return list(iter_gallery(root))


def compute(root: Path) -> dict[str, Any]:
    from gaitsearch.model.checkpoint import load_checkpoint, matching_text_encoder
    from gaitsearch.model.query_pipeline import QueryPipeline

    model = load_checkpoint()
    pipeline = QueryPipeline(model, matching_text_encoder(model))
    walks = pinned_walks(root)
    arrays, fps = [a for _, a in walks], [r.fps for r, _ in walks]
    return {
        "checkpoint": model.fingerprint,
        "ids": [r.id for r, _ in walks],
        "walk_vectors": model.embed_sequences(arrays, fps).round(5).tolist(),
        "example_vectors": pipeline.example_vectors(arrays, fps).round(5).tolist(),
        "queries": QUERIES,
        "query_vectors": pipeline.query_vectors(QUERIES).round(5).tolist(),
    }


if __name__ == "__main__":
    import tempfile

    if "--write" not in sys.argv:
        sys.exit(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        PINS.write_text(json.dumps(compute(Path(tmp) / "walks"), indent=1) + "\n")
    print(f"wrote {PINS}")
