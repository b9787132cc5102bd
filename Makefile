# The README's two commands: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_FLAGS := --quiet --disable-pip-version-check
DEMO_PORT ?= 8000

.PHONY: demo test install lint format bench clean services chromium screenshots

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) --upgrade pip
	$(PY) -m pip install $(PIP_FLAGS) -r requirements-dev.txt
	touch $@

couchserver/node_modules/.installed: couchserver/package.json couchserver/package-lock.json
	npm ci --prefix couchserver --no-audit --no-fund --loglevel=error
	touch $@

# Upstream OpenAPI documents for kubesim (kubectl explain), fetched from the Go module proxy and
# checked against the module's go.sum hash; git-ignored (kubesim/openapi_spec.py).
KUBESIM_OPENAPI := var/cache/kubesim-openapi/.fetched
$(KUBESIM_OPENAPI): kubesim/openapi_spec.py $(VENV)/.installed
	$(PY) -m kubesim fetch-openapi
	touch $@

# The upstream protobuf schema (k8s.io/api, k8s.io/apimachinery generated.proto), fetched the
# same way and compiled with the pinned grpcio-tools; git-ignored (kubesim/protobuf_schema.py).
KUBESIM_PROTOBUF := var/cache/kubesim-protobuf/.fetched
$(KUBESIM_PROTOBUF): kubesim/protobuf_schema.py kubesim/resources.py $(VENV)/.installed
	$(PY) -m kubesim fetch-protobuf
	touch $@

install: $(VENV)/.installed couchserver/node_modules/.installed $(KUBESIM_OPENAPI) $(KUBESIM_PROTOBUF)

## make demo: kubesim + CouchDB-compatible server + qcluster + seeded signups + admin on :8000
demo: install
	DEBUG=1 $(PY) manage.py demo --port $(DEMO_PORT)

## make chromium: Debian's Chromium for the browser tests (tests/browser/), installed only when
## it is missing and we are root; otherwise say so (the browser tests then skip, saying why,
## except where BROWSER_TESTS_REQUIRED=1, as in CI, where they fail).
CHROMIUM ?= /usr/bin/chromium
chromium:
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "make: installing chromium (apt-get) for the browser tests"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	    >/dev/null || echo "make: could not install chromium; the browser tests will say so"; \
	else echo "make: $(CHROMIUM) is missing and we are not root: install chromium to run the browser tests"; fi

## make test: lint, Django checks, migrations check, then the whole suite (browser tests included)
test: install lint chromium
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

## make screenshots: PNGs of the main pages from a seeded demo state, into docs/screenshots/
screenshots: install chromium
	$(VENV)/bin/pytest tests/browser/screenshots.py -q -p no:cacheprovider

clean:
	rm -rf $(VENV) couchserver/node_modules var db.sqlite3

## A real Kubernetes control plane on 127.0.0.1 (etcd, kube-apiserver, kube-controller-manager,
## kube-scheduler, kwok fake node), built from the Go modules pinned in realcluster/.
.PHONY: realcluster realcluster-up realcluster-down realcluster-status realcluster-env test-real
## make realcluster: build the binaries once into ~/.cache/subscribie-admin/realcluster/<versions>/bin ($REALCLUSTER_CACHE)
realcluster:
	bash realcluster/cluster.sh build

## make realcluster-up: start it and wait until ready; kubeconfig in var/realcluster/kubeconfig
realcluster-up: realcluster $(VENV)/.installed
	bash realcluster/cluster.sh up
	@bash realcluster/cluster.sh env

## make realcluster-down: stop it and remove its data (safe to run when it is not up)
realcluster-down:
	bash realcluster/cluster.sh down

realcluster-status:
	@bash realcluster/cluster.sh status

## make realcluster-env: print `export KUBECONFIG=...`, versions, ports and paths
realcluster-env:
	@bash realcluster/cluster.sh env

## make test-real: kubesim's contract tests (kubectl and the official client) and the product's
## end-to-end tests against the real control plane; it is brought up and always taken down.
REALCLUSTER_STATE := $(CURDIR)/var/realcluster
test-real: install realcluster
	bash realcluster/cluster.sh up
	KUBESIM_CONTRACT_KUBECONFIG=$(REALCLUSTER_STATE)/kubeconfig \
	KUBESIM_CONTRACT_AUDIT_LOG=$(REALCLUSTER_STATE)/audit.log \
	  $(VENV)/bin/pytest --real-cluster-only $(PYTEST_ARGS); \
	  status=$$?; bash realcluster/cluster.sh down; exit $$status
