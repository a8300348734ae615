# Storefront platform. `make run` starts everything; `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := libs/storefront_kit libs/jwt_core_lib \
	services/auth services/catalog services/inventory services/orders \
	services/notifications services/ws-gateway \
	sandbox scripts/stack scripts/seed
PY_PACKAGES := storefront_kit jwt_core_lib auth_service catalog_service inventory_service \
	orders_service notifications_service ws_gateway_service storefront_sandbox storefront_stack storefront_seed
STAMP := $(VENV)/.installed

.PHONY: help install env run test lint format typecheck check bench render-gateway clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(STAMP): constraints.txt requirements-dev.txt $(foreach p,$(PACKAGES),$(p)/pyproject.toml)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==25.3"
	$(BIN)/python -m pip install --quiet -c constraints.txt -r requirements-dev.txt \
		$(foreach p,$(PACKAGES),-e $(p))
	@touch $(STAMP)

install: $(STAMP) ## Create .venv with every package installed editable (one command)

env: ## Write .env with fresh secrets for docker compose (never overwrites an existing one)
	@$(PYTHON) scripts/stack/src/storefront_stack/envfile.py

run: install ## Start the whole platform on this machine (Ctrl-C stops it)
	$(BIN)/python -m storefront_stack run

test: install ## Run the whole test suite against real servers, with coverage
	@rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest $(PYTEST_ARGS)
	@$(BIN)/coverage combine -q
	$(BIN)/coverage report

lint: install ## ruff (lint and format check) and the import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install ## Apply ruff's formatting and fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install ## mypy over every package and the benchmarks
	$(BIN)/mypy $(foreach p,$(PY_PACKAGES),-p $(p))
	$(BIN)/mypy bench/*.py

check: lint typecheck test ## Everything CI runs

render-gateway: install ## Re-render the committed nginx configs (compose, Kubernetes) from gateway/nginx
	$(BIN)/python -m storefront_stack render-gateway

bench: install ## Load benchmarks (see bench/README.md)
	@echo "see bench/README.md for the individual benchmarks"

clean: ## Remove the runner's state (databases, logs) but keep the download cache
	rm -rf .stack/run .coverage .coverage.*
