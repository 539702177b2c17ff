# Civic: `make run` sets everything up and starts the platform; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
VENDOR_STAMP := src/civic/web/static/vendor/.installed
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup run test test-sqlite test-postgres lint bench browser postgis clean

setup: $(PY_STAMP) $(VENDOR_STAMP)

$(PY_STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

$(VENDOR_STAMP): package.json package-lock.json scripts/copy-vendor.mjs
	@command -v npm >/dev/null || { echo "npm is needed for the map and page libraries"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	npm run --silent vendor
	@touch $@

# Debian's Chromium drives the browser tests; install it where we are allowed to.
browser:
	@if ! command -v /usr/bin/chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	  else echo "Install Debian's chromium (sudo apt-get install chromium) for the browser tests"; fi; \
	fi

# PostGIS for the local PostgreSQL 15 (the spatial store, its tests and its benchmark baseline).
# Idempotent; where apt is missing or fails the platform still runs, with the store in memory.
postgis:
	@if [ -d /usr/lib/postgresql/15 ] && [ ! -e /usr/share/postgresql/15/extension/postgis.control ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15-postgis-3 >/dev/null; } \
	      || echo "Could not install postgresql-15-postgis-3: the spatial store will run in memory"; \
	  else echo "Install postgresql-15-postgis-3 (sudo apt-get install postgresql-15-postgis-3) for PostGIS"; fi; \
	fi

run: setup postgis
	$(BIN)/civic db upgrade
	$(BIN)/civic demo load
	$(BIN)/civic run

test: setup browser postgis
	$(MAKE) --no-print-directory test-sqlite
	$(MAKE) --no-print-directory test-postgres

test-sqlite:
	@echo "== test suite on SQLite =="
	CIVIC_TEST_DATABASE=sqlite $(BIN)/pytest

test-postgres:
	@echo "== test suite on PostgreSQL (localhost:5432, throwaway database) =="
	CIVIC_TEST_DATABASE=postgres $(BIN)/pytest

lint: setup
	$(BIN)/ruff check src tests bench migrations
	$(BIN)/ruff format --check src tests bench migrations
	$(BIN)/mypy -p civic.kernel
	$(BIN)/lint-imports

bench: setup postgis
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) node_modules src/civic/web/static/vendor var
