# The two commands of the README: `make serve` (the webhook server) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: serve test lint install clean

$(BIN)/wa-sessions: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

install: $(BIN)/wa-sessions

serve: install
	$(BIN)/wa-sessions serve

lint: install
	$(BIN)/ruff check plugin adapters tests examples benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
