"""``gaitsearch search``, ``serve`` and ``run`` from the command line."""

from __future__ import annotations

import json

import pytest
from gaitsearch.service import cli_serve
from gaitsearch.service.cli import app
from service_helpers import QUERY, service_index  # noqa: F401 - fixture
from typer.testing import CliRunner

runner = CliRunner()


def test_search_prints_ranked_results(service_index):  # noqa: F811
    args = ["search", QUERY, "--index-dir", str(service_index.index_dir), "-k", "4"]
    args += ["--checkpoint", str(service_index.checkpoint)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["query"] == QUERY and [r["rank"] for r in doc["results"]] == [1, 2, 3, 4]
    table = runner.invoke(app, args)
    assert table.exit_code == 0 and doc["results"][0]["id"] in table.stdout


@pytest.mark.parametrize("command", ["search", "serve"])
def test_missing_index_is_one_clear_error_line(tmp_path, command):
    args = ["search", "walk"] if command == "search" else ["serve"]
    result = runner.invoke(app, [*args, "--index-dir", str(tmp_path / "none")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "CURRENT" in lines[0]
    assert "Traceback" not in result.output


def test_search_refuses_a_checkpoint_the_index_was_not_built_with(service_index):  # noqa: F811
    # No --checkpoint: the shipped one, which did not build this (tiny-checkpoint) index.
    result = runner.invoke(app, ["search", QUERY, "--index-dir", str(service_index.index_dir)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "checkpoint" in lines[0]
    assert "Traceback" not in result.output


def test_blank_search_text_is_refused(service_index):  # noqa: F811
    result = runner.invoke(app, ["search", "  ", "--index-dir", str(service_index.index_dir)])
    assert result.exit_code == 2 and "empty" in result.output


def test_run_builds_the_demo_once_then_reuses_it(tmp_path, monkeypatch, tiny_checkpoint):
    served = []
    monkeypatch.setattr(
        cli_serve, "_serve", lambda settings, banner=None: served.append((settings, banner))
    )
    monkeypatch.setenv("GAITSEARCH_CHECKPOINT", str(tiny_checkpoint))
    demo = tmp_path / "demo"
    first = runner.invoke(app, ["run", "--data-dir", str(demo), "--count", "24", "--port", "8123"])
    assert first.exit_code == 0, first.output
    assert (demo / "gallery" / "metadata.jsonl").is_file()
    assert (demo / "index" / "CURRENT").read_text().strip() == "v0001"
    settings, banner = served[-1]
    assert settings.index_dir == demo / "index" and settings.port == 8123
    assert "http://127.0.0.1:8123" in banner
    second = runner.invoke(app, ["run", "--data-dir", str(demo), "--count", "24"])
    assert second.exit_code == 0 and "reusing" in second.output
    assert (demo / "index" / "CURRENT").read_text().strip() == "v0001"


def test_serve_preloads_the_checkpoint_its_text_encoder_and_the_index(service_index):  # noqa: F811
    settings = service_index.settings()
    model, encoder = cli_serve._preload(settings)
    assert encoder.fingerprint == model.config.text_encoder.fingerprint


def test_serve_refuses_an_index_built_with_another_checkpoint(
    service_index,  # noqa: F811
    tmp_path,
    make_tiny_checkpoint,
):
    other = make_tiny_checkpoint(tmp_path / "other")
    args = ["serve", "--index-dir", str(service_index.index_dir), "--checkpoint", str(other)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "checkpoint" in result.output
    assert result.output.startswith("error: ") and "Traceback" not in result.output
