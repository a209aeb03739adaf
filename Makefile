# `make serve` needs only what the daemon imports; `make test` and `make lint` add their own.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv serve test test-deps lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# One stamp per set of extras, each remade when pyproject.toml changes.
$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.runtime

serve: $(VENV)/.runtime
	$(BIN)/nsd serve $(ARGS)

# Debian packages the tests drive (root installs them; otherwise it says which command does).
test-deps:
	tools/install-test-deps.sh

test: test-deps $(VENV)/.test
	$(BIN)/pytest -q $(ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check nsd tests tools
	$(BIN)/ruff format --check nsd tests tools
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(VENV)/.test
	$(BIN)/python tools/bench/namespace.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
