# mlstack: every entry point bootstraps .venv from requirements.lock on first use.
SHELL := /bin/bash
.SHELLFLAGS := -o errexit -o pipefail -o nounset -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COMPOSE := $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo "docker-compose")
PYTEST_ARGS ?=

.PHONY: venv pipeline test lint typecheck unit mutation stop up down logs train bench bench-quick simulate lock images clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	@# setuptools warns on every editable install that folders named like the package may shadow it
	@# (ours are the package); the first run should print our output, not that
	PYTHONWARNINGS=ignore::UserWarning $(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

pipeline: $(STAMP)  ## the whole pipeline, locally (MLflow on SQLite, local processes)
	$(BIN)/mlstack run --runtime local

lint: $(STAMP)  ## ruff, formatting, import layering (import-linter, pyproject.toml), mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check mlstack api exporter tests benchmarks
	$(BIN)/lint-imports --no-cache
	$(MAKE) --no-print-directory typecheck

typecheck: $(STAMP)  ## mypy (strict for the mlstack package)
	$(BIN)/mypy mlstack api/mlstack_api exporter/mlstack_exporter tests benchmarks base-image

test: lint  ## the whole suite: lint, types, unit, integration, docker e2e
	$(BIN)/pytest $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/pytest -m "not integration and not docker and not ct" $(PYTEST_ARGS)

mutation: $(STAMP)  ## mutmut over the decision modules: score per module, every survivor named (not in `make test`)
	$(BIN)/python -m tests.mutation.run $(MUTATION_ARGS)

stop: $(STAMP)  ## stop the local services started by `make pipeline`
	$(BIN)/mlstack services stop

up: $(STAMP)  ## the compose stack (builds the shared base image first)
	$(BIN)/mlstack platform check-env
	$(COMPOSE) --profile base build base
	$(COMPOSE) up -d --build

down:
	$(COMPOSE) down

logs:
	$(COMPOSE) logs --tail=200

train:
	$(COMPOSE) --profile train run --rm trainer

images:
	$(COMPOSE) --profile base build base
	$(COMPOSE) --profile train --profile jenkins build

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks.run --quick

simulate: $(STAMP)
	$(BIN)/mlstack simulate

lock:
	rm -rf /tmp/mlstack-lock && $(PYTHON) -m venv /tmp/mlstack-lock
	/tmp/mlstack-lock/bin/pip install --quiet ".[api,exporter,dev,lightgbm]"
	{ echo "# Pinned dependencies for every extra (api, exporter, dev, lightgbm). Regenerate: make lock"; \
	  /tmp/mlstack-lock/bin/pip freeze --exclude mlstack; } > requirements.lock

clean:
	rm -rf $(VENV) .mlops
