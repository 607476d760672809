# Conveyor's front door. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WORKERS ?= 2
export PATH := $(CURDIR)/$(BIN):$(PATH)
# The local-run targets (and migrate, which they run first) use DEBUG and its throwaway
# secret key unless told otherwise; nothing else (tests, compose) inherits that.
migrate dev token superuser: export DJANGO_DEBUG ?= true

.PHONY: help venv lock services dev-services migrate dev token superuser lint format test test-unit test-cluster test-compose bench clean env up down logs

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

# Versions come from the lock files (hashes checked), so a fresh clone gets what CI tested.
# The project itself is not installed: every command runs from this folder.
$(VENV)/.installed: requirements/dev.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 12) else "Python 3.12 is required (.python-version); got " + sys.version)'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements/dev.lock
	touch $@

venv: $(VENV)/.installed ## Create .venv with every Python dependency, from requirements/dev.lock

UV = $(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.12 --python-platform x86_64-manylinux_2_28
lock: ## Re-resolve the lock files (requirements/*.lock) from pyproject.toml and bench/requirements.txt
	test -x $(BIN)/uv || $(BIN)/pip install --quiet 'uv==0.13.*'
	$(UV) pyproject.toml -o requirements/main.lock
	$(UV) pyproject.toml --extra dev -o requirements/dev.lock
	$(UV) pyproject.toml --extra dev bench/requirements.txt -o requirements/bench.lock

services: ## Install (apt) and start RabbitMQ and PostgreSQL if missing or stopped
	scripts/ensure-services.sh rabbitmq postgresql

# What make dev needs on this machine: RabbitMQ, and PostgreSQL when DATABASE_URL names a local one.
dev-services:
	scripts/ensure-services.sh for-dev

migrate: venv dev-services ## Apply database migrations (SQLite unless DATABASE_URL is set) and collect static files
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput -v0

dev: venv migrate ## Run web (127.0.0.1:8000), WORKERS worker processes (default 2), the relay and the scheduler; Ctrl-C stops all
	WORKERS=$(WORKERS) exec $(BIN)/python scripts/dev.py

token: venv migrate ## Create an admin-scoped API token; the token is the last line
	@$(BIN)/python manage.py create_token --name "make-token" --scope admin

superuser: venv migrate ## Create a Django superuser (asks for name and password): the admin and the dashboard (/dashboard/)
	$(BIN)/python manage.py createsuperuser

lint: venv ## ruff: lint and check the formatting (no changes made)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv ## ruff: fix what can be fixed and format the code
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: venv lint ## Lint, then run the whole test suite (unit, integration against real RabbitMQ/PostgreSQL/Prometheus, end-to-end)
	scripts/ensure-services.sh rabbitmq postgresql prometheus browser
	$(BIN)/pytest

# Apart from make test (its budget): three private RabbitMQ nodes of its own (never the
# shared server's queues; the throughput comparison uses a vhost of its own there).
test-cluster: venv ## A three-node RabbitMQ cluster with quorum queues: nodes killed and stopped under load, nothing lost (~3 min; CI runs it after make test)
	scripts/ensure-services.sh rabbitmq postgresql
	$(BIN)/pytest tests/cluster -m cluster -s

# Apart from make test too: a private Docker engine of its own (own data root, socket and
# bridge; removed at the end with all it built), images it cannot pull built as stand-ins.
test-compose: venv ## docker-compose.yml on a real Docker engine: up --scale worker=4, 200 tasks, Prometheus targets, stop/down/up (~5 min; CI runs it)
	scripts/ensure-services.sh docker
	$(BIN)/pytest tests/compose -m compose -s

test-unit: venv ## Unit tests only (StubBroker; needs only PostgreSQL)
	$(BIN)/pytest -m "not integration and not e2e"

# The benchmark's own dependencies (Celery, py-spy) go into .venv only through this target.
$(VENV)/.bench-installed: requirements/bench.lock $(VENV)/.installed
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements/bench.lock
	touch $@

bench: venv $(VENV)/.bench-installed ## Measure Conveyor against bare pika, Dramatiq, Celery (with and without results) and django-q2 (BENCH_SCALE=0.1 for a quick look)
	scripts/ensure-services.sh rabbitmq postgresql wrk
	DJANGO_DEBUG=false $(BIN)/python -m bench

clean: ## Remove the virtual environment and local data (var/)
	rm -rf $(VENV) var

# --- docker compose (needs a Docker engine; nothing above does) -------------------
COMPOSE ?= docker compose
ENV_FILE ?= .env
# `make up` runs 4 worker replicas unless WORKERS is given (make's own default of 2
# is for `make dev`).
UP_WORKERS = $(if $(filter command line environment,$(origin WORKERS)),$(WORKERS),4)
# The shell environment beats .env in compose's interpolation; this Makefile exports
# DJANGO_DEBUG only for the local-run targets, so compose gets .env's value.
COMPOSE_RUN = $(COMPOSE) --env-file $(ENV_FILE)

$(ENV_FILE): .env.example
	@test -e $@ || $(PYTHON) scripts/generate-env.py --example .env.example --output $@

env: $(ENV_FILE) ## Create .env from .env.example with generated secrets (never overwrites it)

up: $(ENV_FILE) ## docker compose: build the image, start everything with WORKERS worker replicas (default 4)
	$(COMPOSE_RUN) up -d --build --scale worker=$(UP_WORKERS)

down: ## docker compose: stop and remove the containers (named volumes are kept)
	$(COMPOSE_RUN) down

logs: ## docker compose: follow every service's logs
	$(COMPOSE_RUN) logs -f --tail=100
