# Every target installs what it needs: a fresh clone runs `make run` or `make test` as is.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8080
VERSION = $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)

.PHONY: help install system-deps run test lint bench new-model k8s-render k8s-deploy \
	k8s-undeploy docker-base docker-ci-test bump-version clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch first: any other torch requirement pulls CUDA packages.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[torch,deploy,dev]"
	@touch $(STAMP)

install: $(STAMP) ## Install the package, torch (CPU), deploy tools and dev tools into .venv

system-deps: ## Install redis-server from Debian when missing (tests start a real one)
	@command -v redis-server >/dev/null || { \
		echo "installing redis-server (apt)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) \
		|| { echo "error: could not install redis-server; install it (Debian: apt-get install redis-server)" >&2; exit 1; }; }

run: $(STAMP) ## Serve a demo model (iris, trained here) on localhost:$(PORT)
	$(BIN)/python -m model_deployment_app.demo demo
	MDA_CONFIG_PATH=demo/config.yaml PORT=$(PORT) MDA_HOST=127.0.0.1 $(BIN)/mda serve

test: $(STAMP) system-deps ## Run the whole test suite
	$(BIN)/python -m pytest

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check model_deployment_app tests bench
	$(BIN)/ruff format --check model_deployment_app tests bench
	$(BIN)/mypy

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo
