"""Training recipes as data: shipped files, flag overrides, refusals with one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gaitsearch.model.train_config import TrainConfig
from gaitsearch.model.train_recipe import (
    config_from,
    load_recipe,
    shipped_recipes,
)
from gaitsearch.service.cli import app
from pydantic import ValidationError
from typer.testing import CliRunner

SHIPPED_CONFIG = Path(__file__).parents[1] / "model" / "checkpoints" / "default" / "config.json"
RUN = {"data": "g", "out": "ckpt"}


def invoke(*args: str):  # noqa: ANN201
    return CliRunner().invoke(app, ["train", "--data", "g", "--out", "ckpt", *args])


def one_error_line(res, *words: str) -> None:  # noqa: ANN001
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    for word in words:
        assert word in lines[0], res.output


def test_shipped_recipe_is_what_the_shipped_checkpoint_recorded() -> None:
    recorded = json.loads(SHIPPED_CONFIG.read_text())["training"]
    settings = load_recipe("default").settings
    assert settings, "the default recipe is empty"
    for key, value in settings.items():
        assert key in recorded, key
        assert recorded[key] == value, (key, recorded[key], value)
    cfg = config_from("default", RUN)
    assert cfg.space == "attributes" and cfg.preset == "mini" and cfg.lr == 3e-3


def test_paper_recipe_has_the_papers_settings_and_says_what_it_cannot_match() -> None:
    recipe = load_recipe("paper")
    cfg = config_from("paper", RUN)
    assert (cfg.space, cfg.loss, cfg.margin, cfg.lr, cfg.weight_decay) == (
        "text", "triplet", 10.0, 1e-5, 0.1,
    )  # fmt: skip
    assert (cfg.batch_size, cfg.n_frames, cfg.head, cfg.attribute_weight) == (
        128, 60, "projection", 0.0,
    )  # fmt: skip
    assert not cfg.scale_normalise and cfg.centre == "first_joint"
    assert any("UAE-Large-V1" in line for line in recipe.not_matched)
    assert set(shipped_recipes()) >= {"default", "paper"}


def test_flags_override_a_recipe_and_a_path_works_as_a_name(tmp_path) -> None:
    cfg = config_from("paper", {**RUN, "lr": 2e-5, "epochs": 3.0, "margin": None})
    assert cfg.lr == 2e-5 and cfg.epochs == 3.0 and cfg.margin == 10.0  # None: not given
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"about": "x", "settings": {"space": "text", "lr": 0.01}}))
    assert config_from(str(mine), RUN).lr == 0.01


def test_a_setting_that_does_nothing_in_the_space_is_refused() -> None:
    with pytest.raises(ValidationError, match="--temperature does nothing"):
        TrainConfig(**RUN, space="attributes", temperature=0.1)
    with pytest.raises(ValidationError, match="--query-head-steps does nothing"):
        TrainConfig(**RUN, space="text", query_head_steps=10)
    with pytest.raises(ValidationError, match="--margin does nothing"):
        TrainConfig(**RUN, space="text", loss="infonce", margin=3.0)
    TrainConfig(**RUN, space="text", loss="triplet", margin=3.0)  # applies: accepted
    one_error_line(invoke("--recipe", "default", "--loss", "triplet"), "--loss", "attributes")
    # switching the space on top of a recipe names the recipe's setting and file
    one_error_line(
        invoke("--recipe", "default", "--space", "text", "--epochs", "1"),
        "--query-head-steps", "default.json",
    )  # fmt: skip


def test_bad_recipes_are_one_line_naming_the_file(tmp_path) -> None:
    one_error_line(invoke("--recipe", "nope"), "nope.json", "default", "paper")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    one_error_line(invoke("--recipe", str(bad)), "bad.json", "JSON")
    bad.write_text(json.dumps({"about": "x", "settings": {"lrr": 1}}))
    one_error_line(invoke("--recipe", str(bad)), "bad.json", "lrr")
    bad.write_text(json.dumps({"about": "x", "settings": {"data": "elsewhere"}}))
    one_error_line(invoke("--recipe", str(bad)), "bad.json", "--data")
    bad.write_text(json.dumps({"about": "x", "settings": {}, "extra": 1}))
    one_error_line(invoke("--recipe", str(bad)), "bad.json", "extra")
    one_error_line(invoke("--recipe", "paper", "--epochs", "1", "--lr", "-1"), "--lr")
    one_error_line(invoke("--recipe", "paper"), "--epochs")


def test_every_setting_is_a_train_flag_with_its_description() -> None:
    res = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "400"})
    assert res.exit_code == 0
    for name, field in TrainConfig.model_fields.items():
        assert "--" + name.replace("_", "-") in res.output, name
        assert field.description and field.description.split()[0] in res.output, name


def test_train_cli_runs_a_recipe_with_overrides(tmp_path, monkeypatch) -> None:
    from gaitsearch.model.checkpoint import load_checkpoint
    from gaitsearch.model.synth import synthesize_gallery

    monkeypatch.setenv("GAITSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "g"
    synthesize_gallery(data, count=48, seed=4, workers=1)
    res = CliRunner().invoke(
        app,
        ["train", "--recipe", "paper", "--data", str(data), "--out", str(tmp_path / "ck"),
         "--preset", "tiny", "--epochs", "1", "--batch-size", "16", "--val-fraction", "0",
         "--threads", "1", "--no-progress", "--work-dir", str(tmp_path / "w")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    training = load_checkpoint(tmp_path / "ck").config.training
    assert training["loss"] == "triplet" and training["lr"] == 1e-5  # from the recipe
    assert training["preset"] == "tiny" and training["batch_size"] == 16  # the flags
