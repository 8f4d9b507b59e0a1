# Powerstrip developer commands. Needs only python3 (>= 3.11) and make.
# `make run` serves the API; `make test` runs the whole suite.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
HOST ?= 127.0.0.1
PORT ?= 8000
LOCK_FLAGS := --generate-hashes --universal --python-version 3.11 --quiet
TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
BENCH_ARGS ?=
HELLO := examples/hello-plugin
HELLO_SOURCES := $(HELLO)/pyproject.toml $(wildcard $(HELLO)/powerstrip_hello/*.py $(HELLO)/powerstrip_hello/migrations/*.py)

export UV_PYTHON := $(BIN)/python

.DEFAULT_GOAL := help
.PHONY: help run dev test test-hello test-pg lint typecheck imports security check mutation bench lock clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv

# Stamp files: an unchanged lock installs nothing on the next run. `uv pip install`
# (not `sync`) so that plugins a user installed into .venv are never removed.
$(VENV)/.runtime-installed: requirements/main.txt pyproject.toml | $(UV)
	$(UV) pip install --require-hashes -r requirements/main.txt
	$(UV) pip install --no-deps -e .
	@touch $@

$(VENV)/.dev-installed: requirements/dev.txt pyproject.toml | $(UV)
	$(UV) pip install --require-hashes -r requirements/dev.txt
	$(UV) pip install --no-deps -e .
	@touch $@ $(VENV)/.runtime-installed

# The example third-party plugin, installed as a user would (a built wheel, not editable).
$(VENV)/.hello-installed: $(VENV)/.dev-installed $(HELLO_SOURCES)
	$(UV) pip install --reinstall-package powerstrip-hello ./$(HELLO)
	@touch $@

instance/config.toml:
	@mkdir -p instance
	@printf '%s\n' \
		'# Written by `make run` for local development (the CLI reads it too); edit freely.' \
		'ENVIRONMENT = "development"' > $@

run: $(VENV)/.runtime-installed instance/config.toml ## install, migrate the database in instance/, serve with gunicorn on HOST:PORT
	$(BIN)/flask --app wsgi db upgrade
	GUNICORN_BIND=$(HOST):$(PORT) exec $(BIN)/gunicorn --config gunicorn.conf.py wsgi:app

dev: $(VENV)/.dev-installed instance/config.toml ## like run, with Flask's reloading debug server (one process; no metrics port)
	$(BIN)/flask --app wsgi db upgrade
	exec $(BIN)/flask --app wsgi run --debug --host $(HOST) --port $(PORT)

test: $(VENV)/.dev-installed $(VENV)/.hello-installed ## install, run the whole suite with coverage
	$(BIN)/pytest
	cd $(HELLO) && ../../$(BIN)/pytest

test-hello: $(VENV)/.hello-installed ## the example plugin's own tests, as its author runs them
	cd $(HELLO) && ../../$(BIN)/pytest

test-pg: $(VENV)/.dev-installed $(VENV)/.hello-installed ## the whole suite on PostgreSQL (127.0.0.1:5432, database test)
	POWERSTRIP_TEST_DATABASE=postgresql $(BIN)/pytest --powerstrip-database-url $(TEST_POSTGRES_URL)
	cd $(HELLO) && ../../$(BIN)/pytest --powerstrip-database-url $(TEST_POSTGRES_URL)

lint: $(VENV)/.dev-installed ## ruff check + ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev-installed $(VENV)/.hello-installed ## mypy --strict on app/, powerstrip/, plugins/ and the example plugin
	$(BIN)/mypy --strict app powerstrip plugins
	$(BIN)/mypy --strict examples/hello-plugin/powerstrip_hello

imports: $(VENV)/.dev-installed $(VENV)/.hello-installed ## import-linter: the plugin boundary (pyproject's contracts)
	$(BIN)/lint-imports

# Fails on any finding of medium or high severity with medium or high confidence; the thresholds
# are command-line only, the rest of the configuration is pyproject's [tool.bandit].
security: $(VENV)/.dev-installed ## bandit on app/, plugins/ and powerstrip/ (medium+ findings fail)
	$(BIN)/bandit -c pyproject.toml -r app plugins powerstrip --severity-level medium --confidence-level medium --quiet

check: lint typecheck imports security ## lint, typecheck, the import contracts and bandit

# Not part of `check`, `test` or CI (minutes, not seconds): pyproject's [tool.mutmut] says which
# modules are mutated and which tests run. `$(BIN)/mutmut browse` shows the survivors.
mutation: $(VENV)/.dev-installed ## mutation testing (mutmut) of the loader, the auth contract, tokens and signing
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results

# Not part of `check`, `test` or CI (minutes): needs wrk, and uses PostgreSQL on 127.0.0.1:5432 when
# it answers. `make bench BENCH_ARGS="--rounds 1 --duration 3 --databases sqlite"`; --help lists all.
bench: $(VENV)/.dev-installed $(VENV)/.hello-installed ## throughput beside a bare flask-smorest app (wrk; BENCH_ARGS="...")
	$(BIN)/python bench/throughput.py --postgres-url $(TEST_POSTGRES_URL) $(BENCH_ARGS)

lock: | $(UV) ## regenerate the hashed lock files in requirements/
	$(UV) pip compile pyproject.toml $(LOCK_FLAGS) -o requirements/main.txt
	$(UV) pip compile pyproject.toml --extra dev $(LOCK_FLAGS) -o requirements/dev.txt

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov
