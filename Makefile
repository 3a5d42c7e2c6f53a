# Keelwatch — the commands a newcomer needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ./data
HOST ?= 127.0.0.1
PORT ?= 8080


.PHONY: help venv run demo test test-deps lint typecheck clean bench bench-quick

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/keelwatch: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

venv: $(BIN)/keelwatch  ## create .venv and install Keelwatch with its test tools

run: venv  ## start a server on embedded storage in $(DATA), with a first admin token
	@$(BIN)/keelwatch tokens ensure-admin --data $(DATA)
	$(BIN)/keelwatch serve --data $(DATA) --host $(HOST) --port $(PORT) --rules content/rules

demo: venv  ## stream a simulated cluster under attack into a fresh server and score the alerts
	@BIN=$(BIN) bash scripts/demo.sh

test-deps:  ## fetch the real servers the integration tests run (syslog daemons, fluentd…)
	@for script in scripts/test-deps/*.sh; do bash "$$script" || exit 1; done

test: venv test-deps  ## install what the tests need and run them all
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: venv  ## ruff and mypy only
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: venv  ## run every benchmark (bench/) at full size and append the results to docs/benchmarks.md
	$(BIN)/python -m bench.run

bench-quick: venv  ## run every benchmark at tiny sizes, recording nothing
	$(BIN)/python -m bench.run --quick

clean:  ## remove the virtual environment and caches (not the data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
