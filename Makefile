# The README's two commands: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_FLAGS := --quiet --disable-pip-version-check
DEMO_PORT ?= 8000

.PHONY: demo test install lint format bench clean services

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) --upgrade pip
	$(PY) -m pip install $(PIP_FLAGS) -r requirements-dev.txt
	touch $@

couchserver/node_modules/.installed: couchserver/package.json couchserver/package-lock.json
	npm ci --prefix couchserver --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed couchserver/node_modules/.installed

## make demo: kubesim + CouchDB-compatible server + qcluster + seeded signups + admin on :8000
demo: install
	DEBUG=1 $(PY) manage.py demo --port $(DEMO_PORT)

## make test: lint, Django checks, migrations check, then the whole suite
test: install lint
	DEBUG=1 $(PY) manage.py check --fail-level WARNING
	DEBUG=1 $(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## make services: install (when absent) and start PostgreSQL and Redis on loopback, as CI does
services:
	bash .ci/services

## make bench: every benchmark, each printing ratios against a baseline from the same run
bench: install
	DEBUG=1 $(PY) -m bench all

clean:
	rm -rf $(VENV) couchserver/node_modules var db.sqlite3
