"""Training really learns; eval prints the contract JSON; classify; checkpoint errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import walking_like
from gaitsearch.model.attributes import ATTRIBUTES
from gaitsearch.model.checkpoint import CheckpointError, load_checkpoint
from gaitsearch.model.embedding_cache import EmbeddingCache
from gaitsearch.model.gallery import GalleryWriter, SequenceRecord
from gaitsearch.model.query_pipeline import QueryPipeline
from gaitsearch.service.cli import app
from typer.testing import CliRunner

PACES = {"slow": 0.6, "brisk": 1.5}
CARRY = ("nothing", "texting")
PACE_WORDS = {"slow": ["walking slowly", "strolling"], "brisk": ["walking briskly", "hurrying"]}
CARRY_WORDS = {
    "nothing": ["empty-handed", "swinging both arms"],
    "texting": ["texting", "looking at a phone"],
}  # noqa: E501
BASE = np.array(
    [[0, -80], [0, -65], [-12, -63], [-15, -45], [-16, -28], [12, -63], [15, -45], [16, -28],
     [-8, -25], [-9, -5], [-10, 15], [8, -25], [9, -5], [10, 15], [-3, -83], [3, -83],
     [-6, -81], [6, -81]], dtype=np.float32,
)  # fmt: skip


def toy_world(root: Path, n: int, seed: int) -> Path:
    """A tiny world where pace sets step frequency and texting stops the arm swing."""
    rng = np.random.default_rng(seed)
    groups: dict[tuple[str, str], list[str]] = {}
    with GalleryWriter(root) as writer:
        for i in range(n):
            pace, carry = str(rng.choice(list(PACES))), str(rng.choice(CARRY))
            frames = int(rng.integers(40, 80))
            t = np.arange(frames)[:, None]
            f = PACES[pace]
            swing = np.sin(2 * np.pi * f * t / 25 + rng.uniform(0, 6.3))
            xy = np.repeat(BASE[None], frames, 0)
            xy[:, [10, 13], 0] += np.concatenate([swing, -swing], 1) * 10 * f
            if carry == "texting":
                xy[:, [4, 7], 1] -= 20
            else:
                xy[:, [4, 7], 0] += np.concatenate([-swing, swing], 1) * 8
            scale = rng.uniform(1.5, 3)
            seq = np.zeros((frames, 18, 3), np.float32)
            seq[..., :2] = xy * scale + rng.uniform(100, 400, 2)
            seq[..., 0] += (f * 3 * scale * t) + rng.normal(0, 1, (frames, 18))
            seq[..., 2] = rng.uniform(0.6, 1, (frames, 18))
            texts = [f"a person {a} {b}" for a in PACE_WORDS[pace] for b in CARRY_WORDS[carry]]
            seq_id = f"s{i:04d}"
            writer.add(
                SequenceRecord(
                    id=seq_id, fps=25, source="toy", attributes={"pace": pace, "carrying": carry},
                    description=texts[0], descriptions=texts[1:],
                ),
                seq,
            )  # fmt: skip
            groups.setdefault((pace, carry), []).append(seq_id)
    with (root / "queries.jsonl").open("w") as fh:
        for (pace, carry), ids in groups.items():
            query = f"someone {PACE_WORDS[pace][1]}, {CARRY_WORDS[carry][1]}"
            fh.write(json.dumps({"query": query, "relevant": ids}) + "\n")
    return root


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("toy")
    return toy_world(base / "train", 240, seed=1), toy_world(base / "test", 80, seed=2)


@pytest.fixture(scope="module")
def trained(toy, text_encoder, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001
    from gaitsearch.model.train import TrainConfig, train

    base = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(
        data=str(toy[0]), out=str(base / "ckpt"), preset="tiny", epochs=20, batch_size=32,
        lr=3e-3, warmup_steps=10, eval_every=50, val_fraction=0.0, work_dir=str(base / "work"),
        progress=False, n_frames=24, threads=1, captions="descriptions", space="text",
    )  # fmt: skip
    # The toy's queries use its own words ("strolling" = slow), so it trains on its own
    # descriptions; attribute-tagged captions are tested on the synthetic world below.
    cache = EmbeddingCache(text_encoder, base / "cache.sqlite")
    summary = train(cfg, text_encoder, cache=cache, log=lambda _: None)
    return cfg, summary, cache


@pytest.mark.parametrize("space", ["attributes", "text"])
def test_attribute_caption_training_learns_the_synthetic_world(
    tmp_path, text_encoder, space
) -> None:
    """Both recipes on a small synthetic gallery: the loss falls and held-out queries beat
    random. attributes (the default): recognition only, a query head fitted on the captions;
    text: tagged captions, multi-positive InfoNCE, the attribute bottleneck."""
    from gaitsearch.model.evaluate import evaluate
    from gaitsearch.model.synth import synthesize_gallery
    from gaitsearch.model.train import TrainConfig, train

    train_dir, test_dir = tmp_path / "train", tmp_path / "test"
    synthesize_gallery(train_dir, count=400, seed=5, workers=1)
    synthesize_gallery(test_dir, count=200, seed=6, workers=1)
    logs: list[str] = []
    cfg = TrainConfig(
        data=str(train_dir), out=str(tmp_path / "ckpt"), preset="tiny", epochs=12,
        batch_size=64, lr=3e-3, warmup_steps=10, eval_every=40, val_fraction=0.0,
        work_dir=str(tmp_path / "work"), progress=False, n_frames=24, threads=1,
        captions_per_sequence=4, space=space,
        **({"query_head_steps": 600} if space == "attributes" else {}),
    )  # fmt: skip
    cache = EmbeddingCache(text_encoder, tmp_path / "cache.sqlite")
    summary = train(cfg, text_encoder, cache=cache, log=logs.append)
    assert any(f"attribute head over {len(ATTRIBUTES)} groups" in line for line in logs)
    losses = [h["loss"] for h in summary["history"]]
    assert losses[-1] < losses[0]
    model = load_checkpoint(cfg.out)
    assert model.space == space
    if space == "text":
        assert any("multi-positive" in line for line in logs)
        assert model.dim == text_encoder.dim
    else:
        assert any("query head fitted" in line for line in logs)
        measured = model.search_space.measured  # type: ignore[attr-defined]
        assert measured is not None and any("measured groups" in line for line in logs)
        assert model.dim == sum(len(v) for v in ATTRIBUTES.values()) + measured.dim
        # The query head reads which values a query names: "in heels" → footwear=heels.
        offsets = np.cumsum([0, *[len(v) for v in ATTRIBUTES.values()]])
        g = list(ATTRIBUTES).index("footwear")
        q = model.embed_queries(text_encoder.encode(["a woman walking in high heels"]))[0]
        block = q[offsets[g] : offsets[g + 1]]
        assert ATTRIBUTES["footwear"][int(block.argmax())] == "heels" and block.max() > 0.5
        # Zero-shot labels score as log-likelihood ratios (view: what a tiny model learns
        # first; pace takes longer than this test trains).
        from gaitsearch.model.gallery import iter_gallery

        labels = ["seen from the side", "seen from the front"]
        hits = total = 0
        for record, arr in iter_gallery(test_dir):
            view = record.attributes["view"]
            if view in ("side", "front"):
                ranked = QueryPipeline(model, text_encoder).rank_labels(arr, record.fps, labels)
                hits += ranked[0][0] == labels[view == "front"]
                total += 1
        assert total > 20 and hits / total > 0.9
    result = evaluate(
        test_dir, test_dir / "queries.jsonl", QueryPipeline(model, text_encoder), extras=False
    )
    # Held-out phrasing of the vocabulary (the synonym family is beyond a model this small).
    phrasing = result["per_family"]["phrasing"]
    assert phrasing["map"] > 1.2 * phrasing["random_map"], phrasing


def test_training_lowers_the_loss_and_beats_random(trained, toy, text_encoder) -> None:
    from gaitsearch.model.evaluate import evaluate

    cfg, summary, _ = trained
    losses = [h["loss"] for h in summary["history"]]
    assert losses[-1] < 0.8 * losses[0]
    model = load_checkpoint(cfg.out)
    result = evaluate(
        toy[1], toy[1] / "queries.jsonl", QueryPipeline(model, text_encoder), extras=False
    )
    assert result["map"] > 1.5 * result["random"]["map"]
    assert model.config.training["data_summary"]["sequences"] == 240
    assert model.config.text_encoder.fingerprint == text_encoder.fingerprint


def test_training_embeds_each_description_once(trained) -> None:
    _, _, cache = trained
    # 240 sequences x 4 descriptions but only 2 x 2 x 4 distinct texts.
    assert cache.misses == 16 and len(cache) == 16


def test_resume_continues_from_the_saved_step(trained, text_encoder) -> None:
    from gaitsearch.model.train import train

    cfg, summary, cache = trained
    more = cfg.model_copy(update={"epochs": 25, "resume": True})
    again = train(more, text_encoder, cache=cache, log=lambda _: None)
    assert again["steps"] > summary["steps"]
    assert again["history"][: len(summary["history"])] == summary["history"]


def test_eval_cli_prints_the_contract_json(trained, toy, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GAITSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    cfg = trained[0]
    data = toy[1]
    res = CliRunner().invoke(
        app,
        ["eval", "--data", str(data), "--queries", str(data / "queries.jsonl"),
         "--checkpoint", cfg.out],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout[res.stdout.index("{") :])
    for key in ("recall@1", "recall@5", "recall@10", "map", "medr", "n_queries"):
        assert key in doc and key in doc["random"]
    assert doc["n_queries"] == 4
    assert 0 <= doc["random"]["map"] <= 1 and doc["medr"] >= 1
    assert doc["batches_of_32"]["n_batches"] == 2
    assert 0 < doc["text_oracle"]["map"] <= 1
    zs = doc["zero_shot"]["per_group"]
    assert set(zs) == {"pace", "carrying"} and 0 <= zs["pace"]["auc"] <= 1
    # every description and query went through the on-disk cache
    assert (tmp_path / "cache" / "text_embeddings.sqlite").is_file()


def test_eval_cli_bad_queries_file(trained, toy, tmp_path) -> None:
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"query": "x"}\n')
    res = CliRunner().invoke(
        app, ["eval", "--data", str(toy[1]), "--queries", str(bad), "--checkpoint", trained[0].out]
    )
    assert res.exit_code == 2 and "q.jsonl:1" in res.output and "Traceback" not in res.output


def test_classify_ranks_labels(trained, toy, text_encoder) -> None:
    from gaitsearch.model.gallery import iter_gallery

    model = load_checkpoint(trained[0].out)
    labels = ["walking slowly", "hurrying"]
    hits = 0
    pairs = list(iter_gallery(toy[1]))
    for record, arr in pairs:
        ranked = QueryPipeline(model, text_encoder).rank_labels(arr, record.fps, labels)
        assert sorted(n for n, _ in ranked) == sorted(labels)
        assert ranked[0][1] >= ranked[1][1]
        truth = "walking slowly" if record.attributes["pace"] == "slow" else "hurrying"
        hits += ranked[0][0] == truth
    assert hits / len(pairs) > 0.75


def test_classify_cli(trained, toy) -> None:
    seq = next((toy[1] / "sequences").glob("*.npy"))
    res = CliRunner().invoke(
        app,
        ["classify", str(seq), "--labels", "running, limping,texting", "--checkpoint",
         trained[0].out, "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    ranked = json.loads(res.stdout.strip().splitlines()[-1])
    assert sorted(r["label"] for r in ranked) == ["limping", "running", "texting"]
    res = CliRunner().invoke(app, ["classify", str(toy[1] / "metadata.jsonl"), "--labels", "a"])
    assert res.exit_code == 2 and "metadata.jsonl" in res.output


def test_corrupt_and_truncated_checkpoints_are_refused(tiny_checkpoint, tmp_path) -> None:
    import shutil

    for name, damage in [
        ("truncated", lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])),
        ("garbage", lambda p: p.write_bytes(b"\x00not safetensors" * 10)),
    ]:
        bad = tmp_path / name
        shutil.copytree(tiny_checkpoint, bad)
        damage(bad / "model.safetensors")
        with pytest.raises(CheckpointError, match="model.safetensors"):
            load_checkpoint(bad)
    cfg_bad = tmp_path / "badcfg"
    shutil.copytree(tiny_checkpoint, cfg_bad)
    (cfg_bad / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json"):
        load_checkpoint(cfg_bad)
    seq = tmp_path / "walk.npy"
    np.save(seq, walking_like(np.random.default_rng(0), 30))
    args = ["classify", str(seq), "--labels", "a", "--checkpoint", str(cfg_bad)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_mismatched_text_encoder_is_refused(tiny_checkpoint, text_encoder) -> None:
    from gaitsearch.model.text_encoder import TextEncoder

    model = load_checkpoint(tiny_checkpoint)
    model.check_text_encoder(text_encoder.fingerprint, text_encoder.name)  # same: accepted
    other = TextEncoder(pooling="cls")
    assert other.fingerprint != text_encoder.fingerprint
    with pytest.raises(CheckpointError, match="fingerprint"):
        model.check_text_encoder(other.fingerprint, other.name)
