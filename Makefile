# The README's commands. `make demo` starts the service with demo data; `make check` runs the tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test check browser lint bench topology lock

$(BIN)/python:
	$(PY) -m venv $(VENV)

setup: $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; } \
	  || echo "chromium could not be installed: browser tests will be skipped"

demo: $(BIN)/python
	$(BIN)/pip install -q -e .
	$(BIN)/consent-center demo
	$(BIN)/consent-center run --port $${PORT:-5000}

test:
	$(BIN)/pytest -q -p no:cacheprovider

check: setup test

# The benchmarks drive their load with wrk (Debian's package).
bench: $(BIN)/python
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(BIN)/python -m bench.run

# nginx in front of two gunicorn instances, two workers, PostgreSQL and Redis on 127.0.0.1.
topology: $(BIN)/python
	deploy/topology-smoke.sh

# The locked dependencies the Dockerfile installs (re-run after changing pyproject.toml).
lock: $(BIN)/python
	$(BIN)/pip install -q pip-tools
	$(BIN)/pip-compile -q --strip-extras --generate-hashes --no-emit-index-url \
	  --no-emit-find-links --output-file requirements.lock pyproject.toml

lint:
	$(BIN)/ruff check app tests bench
	$(BIN)/ruff format --check app tests bench
	$(BIN)/mypy
	$(BIN)/consent-center openapi --check openapi.yaml
