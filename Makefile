# The two commands of the README: `make serve` (the webhook server) and `make test`.
# `make docs` builds the documentation site (docs/ + mkdocs.yml) into site/.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: serve test lint install clean docs

$(BIN)/wa-sessions: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,docs]'
	@touch $@

install: $(BIN)/wa-sessions

serve: install
	$(BIN)/wa-sessions serve

# No --quiet on mkdocs: it hides the warnings that --strict turns into a failure.
lint: install
	$(BIN)/ruff check plugin adapters tests examples benchmarks
	$(BIN)/ruff format --check plugin adapters tests examples benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

test: lint
	$(BIN)/pytest -q

docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# Fuzzing: the CI profile runs in `make test`; this is the long one (100,000 requests in all,
# both stores) and prints the counts (requests, answers by status, parsed receipts, outcomes).
.PHONY: fuzz
fuzz: install
	WA_FUZZ_PROFILE=long $(BIN)/pytest -q -s -p no:cacheprovider tests/test_fuzz_webhooks.py

# docs/img/status-page.png: the status page in headless Chromium, after a few simulated days.
.PHONY: screenshot
screenshot: install
	UPDATE_SCREENSHOT=1 $(BIN)/pytest -q tests/test_status_page.py -k chromium

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache site

# Benchmarks (not tests, not in CI): each installs the `bench` extra and prints its ratio last.
.PHONY: bench-install bench-pressure bench-redis bench-memory bench-receipts bench-soak bench-soak-server bench-webhooks

$(VENV)/.bench: pyproject.toml | install
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	@touch $@

bench-install: $(VENV)/.bench

bench-memory: bench-install
	$(BIN)/python benchmarks/memory_per_message.py

bench-receipts: bench-install
	$(BIN)/python benchmarks/receipts_per_second.py

bench-soak: bench-install
	$(BIN)/python benchmarks/soak.py

bench-soak-server: bench-install
	$(BIN)/python benchmarks/soak_server.py

bench-pressure: bench-install
	$(BIN)/python benchmarks/pressure.py --baseline 7b84cff
	$(BIN)/python benchmarks/redis_store.py

bench-redis: bench-install
	$(BIN)/python benchmarks/redis_store.py

bench-webhooks: bench-install
	$(BIN)/python benchmarks/webhook_throughput.py
