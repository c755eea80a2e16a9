# r1deploy: ops entry points. Each target installs what it needs on first use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The venv is rebuilt when the dependency pins change.
VENV_STAMP := $(VENV)/.installed
CONSTRAINTS := requirements/constraints.txt

.PHONY: help venv test lint bench clean

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(VENV_STAMP): pyproject.toml $(CONSTRAINTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[dev]'
	@touch $@

venv: $(VENV_STAMP) ## Create .venv with the pinned toolchain

test: $(VENV_STAMP) ## Fast test tier (unit tests, no servers)
	$(BIN)/pytest -q tests/unit

lint: $(VENV_STAMP) ## ruff, yamllint, ansible-lint (production profile)
	$(BIN)/ruff check r1deploy tests
	$(BIN)/yamllint -s .
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ansible-lint --profile production playbooks roles

bench: $(VENV_STAMP) ## Benchmarks: print their figures
	$(BIN)/python -m tests.bench.tools_validate
	tests/e2e/envs.sh
	$(BIN)/python -m tests.bench.e2e_stack

clean: ## Remove build outputs (keeps .venv and secrets/)
	rm -rf build .pytest_cache .ruff_cache

.PHONY: test-e2e
test-e2e: $(VENV_STAMP) ## Real-server tier: real vLLM + Open WebUI + headless Chromium (~10 min)
	tests/e2e/envs.sh
	tests/e2e/browser.sh
	$(BIN)/pytest -q tests/e2e
