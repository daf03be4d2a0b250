"""Text-to-gait retrieval on REAL motion capture: the test clips of datasets/real_walks.

Embeds the test clips' windows (split.json, by clip) with a checkpoint (default: the shipped
one), reads each natural query through the project's own query pipeline (``QueryPipeline.read``,
exactly what ``gaitsearch eval`` and the search service rank with), and scores the rankings
with model/evaluate.py's ``retrieval`` (mAP beside a seeded random ranking computed the same
way). A query's relevant windows are the test windows whose labels match its family's
predicate (labels.csv, mapped by ``gaitsearch import bvh``). Prints one JSON object and a
markdown table; writes benchmarks/results/real_clips.json.

    python benchmarks/real_clips.py [--checkpoint DIR] [--data datasets/real_walks] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from gaitsearch.model.checkpoint import load_checkpoint, matching_text_encoder
from gaitsearch.model.embedding_cache import EmbeddingCache
from gaitsearch.model.evaluate import (
    EmbeddedGallery,
    Query,
    average_precisions,
    embed_gallery,
    random_scores,
    retrieval,
)
from gaitsearch.model.query_pipeline import QueryPipeline

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "datasets" / "real_walks"
RESULT = ROOT / "benchmarks" / "results" / "real_clips.json"

# family -> (predicate on a window's attributes, natural phrasings). The predicate names
# gaitsearch attributes the importer wrote (plus the raw 100STYLE label for "rushed").
FAMILIES: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "slow": (
        {"pace": "slow"},
        ("a person walking slowly", "someone strolling at a slow pace", "a slow, unhurried walk"),
    ),
    "normal": (
        {"pace": "normal"},
        ("a person walking at a normal pace", "someone walking normally",
         "an ordinary walk at an average speed"),
    ),
    "brisk": (
        {"pace": "brisk"},
        ("a person walking briskly", "someone walking fast", "a quick, brisk walk"),
    ),
    "angry": (
        {"emotion": "angry"},
        ("an angry walk", "a person walking angrily", "someone storming off in a rage"),
    ),
    "happy": (
        {"emotion": "happy"},
        ("a happy walk", "a person walking joyfully", "someone walking in a cheerful mood"),
    ),
    "rushed": (
        {"bvh.style100": "Rushed"},
        ("a person in a hurry", "someone rushing along", "a rushed walk, as if late"),
    ),
    "long_strides": (
        {"step": "long_strides"},
        ("a person walking with long strides", "someone taking exaggerated long steps",
         "a walk with very big strides"),
    ),
}  # fmt: skip


def _value(attrs: dict[str, Any], key: str) -> Any:
    node: Any = attrs
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def test_subset(gallery: EmbeddedGallery, test_clips: set[str]) -> EmbeddedGallery:
    keep = [i for i, r in enumerate(gallery.records) if getattr(r, "clip", None) in test_clips]
    return EmbeddedGallery(
        [gallery.ids[i] for i in keep],
        [gallery.records[i] for i in keep],
        gallery.vectors[keep],
    )


def _source(record: Any) -> str:
    return "100style" if str(getattr(record, "clip", "")).startswith("100style") else "cmu"


def _family_source(queries: list[Query], family: str, gallery: EmbeddedGallery) -> str:
    """The source most of a family's relevant windows come from."""
    by_id = {r.id: _source(r) for r in gallery.records}
    rel = next(q.relevant for q in queries if q.family == family)
    srcs = [by_id[i] for i in rel]
    return max(set(srcs), key=srcs.count)


def _restricted(
    gallery: EmbeddedGallery, vectors: np.ndarray, queries: list[Query], keep: Any, seed: int
) -> dict[str, Any]:
    """``retrieval`` over the windows ``keep(record)`` accepts (queries keep their vectors)."""
    rows = [i for i, r in enumerate(gallery.records) if keep(r)]
    sub = EmbeddedGallery([gallery.ids[i] for i in rows], [gallery.records[i] for i in rows],
                          gallery.vectors[rows])  # fmt: skip
    ids = set(sub.ids)
    qs = [Query(q.query, [r for r in q.relevant if r in ids], q.family) for q in queries]
    return retrieval(sub, vectors, qs, seed=seed)


def build_queries(gallery: EmbeddedGallery) -> list[Query]:
    out = []
    for family, (pred, phrasings) in FAMILIES.items():
        relevant = [
            r.id
            for r in gallery.records
            if all(_value(r.attributes, k) == v for k, v in pred.items())
        ]
        if not relevant:
            continue
        attrs = {k: v for k, v in pred.items() if "." not in k}
        out.extend(Query(text, relevant, family, attrs) for text in phrasings)
    return out


def run(data: Path, checkpoint: Path | None, seed: int) -> dict[str, Any]:
    split = json.loads((data / "split.json").read_text(encoding="utf-8"))
    test_clips = set(split["test"])
    if test_clips & set(split["train"]):
        raise SystemExit("split.json: a clip is in both train and test")
    model = load_checkpoint(checkpoint)
    encoder = matching_text_encoder(model)
    gallery = test_subset(embed_gallery(model, data / "gallery"), test_clips)
    queries = build_queries(gallery)
    with EmbeddingCache(encoder) as cache:
        pipeline = QueryPipeline(model, encoder, encode_texts=cache.encode)
        vectors = np.asarray(pipeline.read([q.query for q in queries])[0], dtype=np.float32)
    result = retrieval(gallery, vectors, queries, seed=seed)
    views = {
        view: _restricted(
            gallery, vectors, queries, lambda r, v=view: r.attributes.get("view") == v, seed
        )  # fmt: skip
        for view in ("front", "oblique", "side")
    }
    # Within one source: CMU (speed, stride) and 100STYLE (styles) differ in subject, skeleton
    # and capture; ranking inside one source removes that shortcut.
    sources = {
        src: _restricted(gallery, vectors, queries, lambda r, s=src: _source(r) == s, seed)
        for src in ("cmu", "100style")
    }
    # the random ranking's expected mAP, over many seeds (one seed's is noisy on 7 families)
    col = {seq_id: i for i, seq_id in enumerate(gallery.ids)}
    rel = [[col[r] for r in q.relevant] for q in queries]
    fam_rows = {f: [i for i, q in enumerate(queries) if q.family == f] for f in FAMILIES}
    many = np.stack([average_precisions(random_scores((len(queries), len(col)), s), rel)
                     for s in range(seed, seed + 200)])  # fmt: skip
    families = {
        fam: {
            "map": row["map"],
            "random_map": row["random_map"],
            "ratio": row["ratio"],
            "random_map_200_seeds": float(many[:, fam_rows[fam]].mean()),
            "ratio_200_seeds": row["map"] / float(many[:, fam_rows[fam]].mean()),
            "n_queries": row["n_queries"],
            "n_relevant": len(next(q.relevant for q in queries if q.family == fam)),
            "queries": list(FAMILIES[fam][1]),
            "map_by_view": {v: views[v]["per_family"][fam]["map"] for v in views},
            "random_map_by_view": {v: views[v]["per_family"][fam]["random_map"] for v in views},
            "within_source": next(
                {
                    "source": src,
                    "map": res["per_family"][fam]["map"],
                    "random_map": res["per_family"][fam]["random_map"],
                    "ratio": res["per_family"][fam]["ratio"],
                    "n_gallery": res["n_gallery"],
                }
                for src, res in sources.items()
                if fam in res["per_family"] and _family_source(queries, fam, gallery) == src
            ),
        }
        for fam, row in result["per_family"].items()
    }
    return {
        "checkpoint": model.fingerprint,
        "data": str(data.relative_to(ROOT) if data.is_relative_to(ROOT) else data),
        "test_clips": sorted(test_clips),
        "n_test_windows": len(gallery.ids),
        "seed": seed,
        "overall": {
            "map": result["map"],
            "random_map": result["random"]["map"],
            "ratio": result["map"] / result["random"]["map"],
            "random_map_200_seeds": float(many.mean()),
            "ratio_200_seeds": result["map"] / float(many.mean()),
            "n_queries": result["n_queries"],
        },
        "families": families,
    }


def table(res: dict[str, Any]) -> str:
    lines = [
        "| family | queries | relevant windows | mAP | random mAP (seed) | ratio "
        "| random mAP (200 seeds) | ratio (200 seeds) | mAP front / oblique / side "
        "| within source: mAP / random |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fam, row in res["families"].items():
        mv, ws = row["map_by_view"], row["within_source"]
        lines.append(
            f"| {fam} | {row['n_queries']} | {row['n_relevant']} | {row['map']:.3f} | "
            f"{row['random_map']:.3f} | {row['ratio']:.2f} | {row['random_map_200_seeds']:.3f} | "
            f"{row['ratio_200_seeds']:.2f} | "
            f"{mv['front']:.3f} / {mv['oblique']:.3f} / {mv['side']:.3f} | "
            f"{ws['source']}: {ws['map']:.3f} / {ws['random_map']:.3f} |"
        )
    o = res["overall"]
    lines.append(
        f"| **all** | {o['n_queries']} | | {o['map']:.3f} | {o['random_map']:.3f} | "
        f"{o['ratio']:.2f} | {o['random_map_200_seeds']:.3f} | {o['ratio_200_seeds']:.2f} | | |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped one")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULT)
    args = ap.parse_args(argv)
    res = run(args.data.resolve(), args.checkpoint, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(res, indent=2))
    print(table(res), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
