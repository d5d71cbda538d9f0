# Two entry points do all the set-up themselves on a fresh Debian machine:
#   make up     the whole system on this machine (see README)
#   make test   lint, types and the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STATE_DIR ?= .flotta
DEVICES ?= 50
PYTEST_ARGS ?=
# Test processes (pytest-xdist): the suite mostly waits on servers, so two share two cores well.
# The whole-system tests (marker "system", tests/conftest.py) then run alone, one by one.
TEST_WORKERS ?= 2

IMAGES_ARGS ?=

.PHONY: setup system-packages python-env up down test check lint typecheck crds json-schemas bench \
	agent-packages images base-image

setup: system-packages python-env

system-packages:
	bash deploy/local/install-system-packages.sh

python-env: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

up: setup
	$(BIN)/flotta dev up --state-dir $(STATE_DIR) --devices $(DEVICES)

down: python-env
	$(BIN)/flotta dev down --state-dir $(STATE_DIR)

lint: python-env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

PACKAGES := flotta.schemas flotta.pki flotta.mqtt flotta.mosquitto flotta.operator flotta.bridge flotta.agent flotta.exporter flotta.dev

typecheck: python-env
	$(BIN)/mypy $(addprefix -p ,$(PACKAGES)) -m flotta.cli -m flotta.child_process -m flotta.rate_limit -m flotta.gc_freeze -m flotta.tasks -m flotta.health -m flotta.json_log -m flotta.backoff -m flotta.kube_watch -m flotta.nats_connection
	$(BIN)/mypy tests  # looser settings: [[tool.mypy.overrides]] in pyproject.toml

check: lint typecheck

test: setup
	@status=0; \
	for part in '-n $(TEST_WORKERS) -m "not system"' '-m system'; do \
		echo "pytest $$part $(PYTEST_ARGS)"; \
		eval $(BIN)/pytest $$part $(PYTEST_ARGS) || { rc=$$?; [ $$rc -eq 5 ] || status=$$rc; }; \
	done; \
	exit $$status  # 5: a part with no test selected (PYTEST_ARGS naming a part of the suite)

crds: python-env
	$(BIN)/python -m flotta.schemas.crd_generator deploy/crds

json-schemas: python-env
	$(BIN)/python -m flotta.schemas.json_schemas schemas/json --reference docs/payloads.md

# The container images from Debian's packages, into your Podman (docs/images.md);
# IMAGES_ARGS="--store build/images/podman" builds into the store the tests use.
images: setup
	$(BIN)/flotta dev images $(IMAGES_ARGS)

base-image: setup
	$(BIN)/flotta dev images base $(IMAGES_ARGS)

bench: setup
	$(BIN)/python benchmarks/run.py

# The device agent as .deb and .rpm with its Python dependencies (docs/agent-install.md);
# ARCH=arm64 builds for another architecture, PYTHON_ABI=3.12 for another CPython.
ARCH ?=
PYTHON_ABI ?= 3.11
agent-packages: setup
	$(BIN)/python deploy/packages/build.py --python $(PYTHON_ABI) $(if $(ARCH),--arch $(ARCH))
