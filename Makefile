# The README's commands. `make demo` starts the service with demo data; `make check` runs the tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test check browser lint bench

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

lint:
	$(BIN)/ruff check app tests bench
	$(BIN)/ruff format --check app tests bench
	$(BIN)/mypy
	$(BIN)/consent-center openapi --check openapi.yaml
