# r1deploy: ops entry points. Each target installs what it needs on first use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The venv is rebuilt when the dependency pins change.
VENV_STAMP := $(VENV)/.installed
CONSTRAINTS := requirements/constraints.txt

.PHONY: help venv test test-render render lint bench clean

# make render / deploy: which inventory (default: this host), where render writes.
INVENTORY ?= inventory/local
RENDER_DIR ?= build

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(VENV_STAMP): pyproject.toml $(CONSTRAINTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[dev,bench]'
	@touch $@

venv: $(VENV_STAMP) ## Create .venv with the pinned toolchain

test: $(VENV_STAMP) ## Fast test tier (unit tests, no servers) and the real-render tier
	$(BIN)/pytest -q tests/unit
	$(MAKE) test-render

test-render: $(VENV_STAMP) ## Real ansible-playbook renders: scenarios, goldens, idempotence, wrong input
	$(BIN)/pytest -q tests/render

render: $(VENV_STAMP) ## Render each INVENTORY host's stack into RENDER_DIR/<host>/ and validate it (no root, no host touched)
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/render.yml -e r1deploy_render_dir=$(abspath $(RENDER_DIR)) $(ANSIBLE_ARGS)

lint: $(VENV_STAMP) ## ruff, yamllint, ansible-lint (production profile)
	$(BIN)/ruff check r1deploy tests
	$(BIN)/yamllint -s .
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ansible-lint --profile production playbooks roles

bench: $(VENV_STAMP) ## Benchmarks: print their figures
	$(BIN)/python -m tests.bench.tools_validate
	$(BIN)/python -m tests.bench.bench_serving
	$(BIN)/python -m tests.bench.gateway_latency

clean: ## Remove build outputs (keeps .venv and secrets/)
	rm -rf build .pytest_cache .ruff_cache

.PHONY: test-infra
test-infra: $(VENV_STAMP) ## Provisioning roles on a real test host (root; ~10 min)
	@test "$$(id -u)" = 0 || { echo "make test-infra needs root (network namespaces, systemd-nspawn)"; exit 2; }
	time $(BIN)/pytest -p no:cacheprovider -o testpaths=tests/provision -v --durations=10 tests/provision
.PHONY: test-e2e
test-e2e: $(VENV_STAMP) ## Real-server tier: real vLLM + Open WebUI + headless Chromium (~10 min)
	tests/e2e/envs.sh
	tests/e2e/browser.sh
	$(BIN)/pytest -q tests/e2e
