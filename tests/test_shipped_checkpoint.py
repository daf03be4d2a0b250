"""What users get: the shipped checkpoint, through every CLI command and every route.

The tiny checkpoints of the other tests are random; these tests build a real index with the
checkpoint ``make run`` serves, and pin its outputs so a refactor cannot change results.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from gaitsearch.service.cli import app
from service_helpers import QUERY, write_gallery
from shipped_pins import PINS, compute
from typer.testing import CliRunner

runner = CliRunner()


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 120-walk synthetic gallery indexed by the shipped checkpoint, through the CLI."""
    root = tmp_path_factory.mktemp("shipped")
    gallery = write_gallery(root / "gallery", count=120, seed=21)
    result = runner.invoke(
        app, ["index", "build", "--data", str(gallery), "--index-dir", str(root / "index")]
    )
    assert result.exit_code == 0, result.output
    return {"root": root, "gallery": gallery, "index": root / "index"}


@pytest.fixture(scope="module")
def client(shipped, text_encoder):
    from gaitsearch.model.checkpoint import load_checkpoint
    from gaitsearch.service.app import create_app
    from gaitsearch.service.settings import Settings

    # The torch encoder: the CLI's, so the two must agree to the last digit.
    settings = Settings(index_dir=shipped["index"], encoder_backend="torch", admin_token="t")
    with TestClient(create_app(settings, model=load_checkpoint(), text_encoder=text_encoder)) as c:
        yield c


def test_shipped_checkpoint_outputs_are_pinned(tmp_path):
    want = json.loads(PINS.read_text())
    got = compute(tmp_path / "walks")
    assert got["checkpoint"] == want["checkpoint"], "the shipped checkpoint changed"
    assert got["ids"] == want["ids"] and got["queries"] == want["queries"]
    for key in ("walk_vectors", "example_vectors", "query_vectors"):
        assert np.allclose(got[key], want[key], atol=2e-4), key


def test_cli_search_gives_the_same_top10_as_get_search(shipped, client):
    for text in (QUERY, "an old man walking slowly with a cane", "a child seen from the back"):
        cli = runner.invoke(app, ["search", text, "--index-dir", str(shipped["index"]), "--json"])
        assert cli.exit_code == 0, cli.output
        http = client.get("/search", params={"q": text, "k": 10})
        assert http.status_code == 200
        got = [(r["id"], r["score"]) for r in json.loads(cli.stdout)["results"]]
        assert got == [(r["id"], r["score"]) for r in http.json()["results"]]
        assert len(got) == 10


def test_cli_search_table_names_the_top_hit(shipped, client):
    top = client.get("/search", params={"q": QUERY, "k": 1}).json()["results"][0]["id"]
    table = runner.invoke(app, ["search", QUERY, "--index-dir", str(shipped["index"]), "-k", "3"])
    assert table.exit_code == 0 and top in table.stdout


def test_shipped_index_answers_what_the_query_names(client):
    # Walks are ranked by the log-likelihood ratio of the named values: the top hits of a
    # query naming footwear should mostly wear it (synthetic labels are the ground truth).
    hits = client.get("/search", params={"q": "a person walking in high heels", "k": 5}).json()
    shoes = [h["metadata"]["attributes"].get("footwear") for h in hits["results"]]
    assert shoes.count("heels") >= 3, shoes


def test_mismatched_checkpoint_is_refused_in_one_line(shipped, tiny_checkpoint):
    for command in (["search", QUERY], ["serve"]):
        args = [
            *command,
            "--index-dir",
            str(shipped["index"]),
            "--checkpoint",
            str(tiny_checkpoint),
        ]
        result = runner.invoke(app, args)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1, result.output
        assert lines[0].startswith("error: ") and "checkpoint" in lines[0]


def test_every_search_route_over_the_shipped_index(client):
    post = client.post("/search", json={"query": QUERY, "k": 3, "filters": {"view": "side"}})
    assert post.status_code == 200
    assert [h["metadata"]["attributes"]["view"] for h in post.json()["results"]] == ["side"] * 3
    batch = client.post("/search/batch", json={"queries": [QUERY, "a tired man"], "k": 4})
    assert batch.status_code == 200 and [len(r["results"]) for r in batch.json()["results"]] == [
        4,
        4,
    ]
    first = post.json()["results"][0]["id"]
    example = client.post("/search/by-example", json={"id": first, "k": 5})
    assert example.status_code == 200 and first not in [h["id"] for h in example.json()["results"]]
    seq = client.get(f"/sequences/{first}")
    assert seq.status_code == 200
    keypoints = seq.json()["keypoints"]
    # "More like this" with the keypoints themselves: the walk is its own nearest neighbour.
    fps = seq.json()["metadata"]["fps"]
    own = client.post("/search/by-example", json={"keypoints": keypoints, "fps": fps, "k": 1})
    assert own.json()["results"][0]["id"] == first
    labels = ["seen from the side", "seen from the front"]
    ranked = client.post("/classify", json={"keypoints": keypoints, "labels": labels, "fps": fps})
    assert ranked.status_code == 200 and ranked.json()["labels"][0]["label"] == labels[0]
    assert client.get("/index").json()["dim"] == 88  # 61 attribute values + 27 measured


def test_cli_classify_eval_and_index_maintenance_with_the_shipped_checkpoint(shipped, client):
    from gaitsearch.model.gallery import read_metadata

    records = read_metadata(shipped["gallery"])
    side = next(r for r in records if r.attributes.get("view") == "side")
    npy = shipped["gallery"] / "sequences" / f"{side.id}.npy"
    labels = "seen from the side,seen from the front,seen from behind"
    args = ["classify", str(npy), "--labels", labels, "--fps", str(side.fps), "--json"]
    cls = runner.invoke(app, args)
    assert cls.exit_code == 0, cls.output
    assert json.loads(cls.stdout)[0]["label"] == "seen from the side"
    http = client.post(
        "/classify",
        json={"keypoints": np.load(npy).tolist(), "labels": labels.split(","), "fps": side.fps},
    )
    cli_scores = {x["label"]: x["score"] for x in json.loads(cls.stdout)}
    for item in http.json()["labels"]:
        assert item["score"] == pytest.approx(cli_scores[item["label"]], abs=1e-4)

    queries = shipped["gallery"] / "queries.jsonl"
    ev = runner.invoke(
        app, ["eval", "--data", str(shipped["gallery"]), "--queries", str(queries), "--no-extras"]
    )
    assert ev.exit_code == 0, ev.output
    metrics = json.loads(ev.stdout)
    assert metrics["map"] > 1.5 * metrics["random"]["map"]

    ix = str(shipped["index"])
    removed = runner.invoke(app, ["index", "remove", "--ids", side.id, "--index-dir", ix])
    assert removed.exit_code == 0, removed.output
    listing = runner.invoke(app, ["index", "list", "--index-dir", ix])
    assert listing.exit_code == 0 and "v0002" in listing.stdout
    cli = runner.invoke(app, ["search", QUERY, "--index-dir", ix, "--json", "-k", "120"])
    assert side.id not in [r["id"] for r in json.loads(cli.stdout)["results"]]
    added = runner.invoke(
        app, ["index", "add", "--data", str(shipped["gallery"]), "--index-dir", ix]
    )
    assert added.exit_code == 0, added.output
    back = runner.invoke(app, ["search", QUERY, "--index-dir", ix, "--json", "-k", "120"])
    assert side.id in [r["id"] for r in json.loads(back.stdout)["results"]]


def test_a_checkpoint_copy_without_its_caption_sample_is_refused(shipped, tmp_path):
    import shutil

    from gaitsearch.model.checkpoint import default_checkpoint_path

    copy = tmp_path / "copy"
    shutil.copytree(default_checkpoint_path(), copy)
    (copy / "understanding.safetensors").unlink()
    result = runner.invoke(
        app, ["search", QUERY, "--index-dir", str(shipped["index"]), "--checkpoint", str(copy)]
    )
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "understanding.safetensors: missing" in lines[0]


@pytest.mark.parametrize(
    "text", ["xyzzy qwerty", "the quarterly earnings beat expectations", "asdf jkl"]
)
def test_nonsense_is_answered_with_no_results_and_what_can_be_searched(client, shipped, text):
    r = client.get("/search", params={"q": text, "k": 5})
    assert r.status_code == 200
    doc = r.json()
    assert doc["understood"]["grounded"] is False and doc["results"] == []
    assert "names nothing" in doc["detail"] and "footwear" in doc["detail"]
    cli = runner.invoke(app, ["search", text, "--index-dir", str(shipped["index"]), "--json"])
    assert json.loads(cli.stdout)["understood"]["grounded"] is False
    batch = client.post("/search/batch", json={"queries": [text, QUERY], "k": 3}).json()
    assert [item["understood"]["grounded"] for item in batch["results"]] == [False, True]
    assert batch["results"][0]["results"] == [] and len(batch["results"][1]["results"]) == 3


def test_a_partly_understood_query_says_what_it_ignored(client, shipped):
    doc = client.get("/search", params={"q": "a woman in a red coat walking fast"}).json()
    names = {t["name"]: t["value"] for t in doc["understood"]["terms"]}
    assert names.get("gender") == "female" and "pace" in names
    assert {"red", "coat"} <= set(doc["understood"]["ignored"]) and doc["results"]

    # answered on gender and pace: women rank above where the same query about a man puts them
    def women(text: str) -> int:
        hits = client.get("/search", params={"q": text, "k": 20}).json()["results"]
        return [h["metadata"]["attributes"]["gender"] for h in hits].count("female")

    assert (
        women("a woman in a red coat walking fast") >= women("a man in a red coat walking fast") + 3
    )
    table = runner.invoke(
        app, ["search", "a woman in a red coat walking fast", "--index-dir", str(shipped["index"])]
    )
    assert "understood:" in table.stdout and "ignored: red coat" in table.stdout
