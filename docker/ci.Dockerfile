# syntax=docker/dockerfile:1
# The CI test image: the repository with every extra installed, plus redis-server (the tests
# start a real one), Chromium and its driver (the playground's browser tests), git and npm. `make docker-ci-test` builds it and runs `make test` in it.
#   docker build -f docker/ci.Dockerfile -t mda-ci . && docker run --rm mda-ci
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1

# Debian's current redis-server and make; pinning Debian revisions breaks on every point
# release, so versions come from the base image's suite.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends make redis-server chromium chromium-driver \
        nghttp2-client \
        git npm \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --gid 10001 mda && useradd --uid 10001 --gid 10001 --create-home mda
WORKDIR /repo
RUN chown mda:mda /repo
USER 10001:10001

# The dependencies in their own layer, from pyproject.toml alone: the CPU build of torch first
# (any other torch requirement pulls CUDA packages), then every extra the tests use.
COPY --chown=10001:10001 pyproject.toml docker/requirements.py ./
RUN python -m venv .venv \
    && .venv/bin/pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
    && python requirements.py torch transformers deploy dev docs > /tmp/requirements.txt \
    && .venv/bin/pip install --no-cache-dir --requirement /tmp/requirements.txt \
    && rm requirements.py

# Then the source, installed without touching the dependencies; the stamp tells make that
# .venv is complete, so `make test` installs nothing.
COPY --chown=10001:10001 . .
RUN .venv/bin/pip install --no-cache-dir --no-deps --editable . \
    && touch .venv/.installed .venv/.installed-serve

CMD ["make", "test"]
