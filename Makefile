# Two commands do all setup on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
CONSTRAINTS := constraints.txt
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(CONSTRAINTS) | sha256sum | cut -c1-16)

.PHONY: install demo test lint bench bench-registry bench-serving bench-log bench-drift bench-batch browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml $(CONSTRAINTS)
	$(PIP) install --quiet -c $(CONSTRAINTS) -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

# Debian's Chromium, for the tests that open reports and pages in a real browser.
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

demo: install
	$(BIN)/python demo/demo.py

test: install browser
	$(BIN)/ruff check src tests bench demo
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests bench demo
	$(BIN)/ruff format --check src tests bench demo

bench: bench-registry bench-serving bench-log bench-drift bench-batch

bench-registry: install
	$(BIN)/python bench/registry/run.py $(BENCH_ARGS)

bench-serving: install
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/serving/run.py $(BENCH_ARGS)

# Inference log on against off, both servers up at once, measured in alternation (issue 4).
bench-log: install
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/serving/log_overhead.py $(BENCH_ARGS)

bench-drift: install
	$(BIN)/python bench/drift/run.py $(BENCH_ARGS)

bench-batch: install
	$(BIN)/python bench/batch/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
