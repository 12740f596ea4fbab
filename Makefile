# Polku: `make run` sets up and runs the whole thing; `make test` sets up and runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export POLKU_DATABASE_URL ?= sqlite:///var/polku.db

.PHONY: setup run test bench lint clean services conformance-doc mutate

$(BIN)/polku: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/polku

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

setup: $(BIN)/polku node_modules/.package-lock.json
	@[ ! -x scripts/build_assets.sh ] || scripts/build_assets.sh

run: setup
	$(BIN)/polku init
	$(BIN)/polku deploy bpmn/ --by setup
	$(BIN)/polku seed-demo
	POLKU_INSECURE_COOKIES=1 $(BIN)/polku serve --host 127.0.0.1 --port 5000

services:
	scripts/postgres.sh start >/dev/null
	scripts/browser.sh

test: setup services
	POLKU_TEST_PG_URL=$$(scripts/postgres.sh url) $(BIN)/pytest -q

bench: setup services
	$(BIN)/python bench/engine.py
	POLKU_TEST_PG_URL=$$(scripts/postgres.sh url) $(BIN)/python bench/timers.py
	POLKU_TEST_PG_URL=$$(scripts/postgres.sh url) $(BIN)/python bench/http.py

# mutation testing, module by module against its tests (slow: not part of `make test`); scores in docs/testing.md
# one module: make mutate MODULES=engine/forms.py
mutate: setup
	$(BIN)/python scripts/mutate.py $(MODULES)

# docs/conformance.md: every BPMN construct of tests/conformance/ run straight, reloaded and via the CLI
conformance-doc: setup
	$(BIN)/python -m tests.conformance.report

lint: setup
	$(BIN)/ruff check engine webui tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) node_modules var
