# The two commands of the README: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup run test lint typecheck browser clean bench docker-test

setup: $(STAMP)

# torch is installed first and pinned: the CPU build comes from a local wheel; a loose
# requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev,scale,lean]"
	touch $(STAMP)

# Debian's chromium for the web page test (Playwright drives it; no browser download).
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && apt-get install -y -qq chromium >/dev/null); \
	  else echo "chromium missing: run 'sudo apt-get install -y chromium' (the browser test will be skipped)"; fi; }

run: setup
	$(BIN)/gaitsearch run

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile

typecheck: setup
	$(BIN)/mypy gaitsearch model index service

test: setup browser lint typecheck
	$(BIN)/python -m pytest -q

# Builds the Docker image with podman and runs it for real (root, ~16 GB free; see docs/docker.md).
docker-test: setup
	$(BIN)/python tests/docker/run_image_test.py

bench: setup
	$(BIN)/python benchmarks/synth_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
