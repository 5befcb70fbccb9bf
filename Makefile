# OpenFloat: every target installs what it needs first and is safe to run again.

VENV    := .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
STAMP   := $(VENV)/.installed
PORT    ?= 8787

.PHONY: setup containers run demo bench test lint package clean

setup: $(STAMP)

# The virtualenv is rebuilt only when a requirements or constraints file changes.
$(STAMP): requirements.txt requirements-agent.txt requirements-dev.txt constraints.txt pyproject.toml
	@command -v python3 >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq python3 python3-venv; }
	@test -x $(PY) || python3 -m venv $(VENV) 2>/dev/null || { \
	  rm -rf $(VENV); apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv $(VENV); }
	$(PIP) install -q --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	$(PIP) install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

## containers: podman + runc, CRIU 4.1.1 (built from source), a local registry, test images
containers:
	bash agent/install.sh
	bash agent/images.sh

## run: start the local OpCenter (moto stands in for AWS; state lives in memory)
run: $(STAMP) containers
	$(PY) -m localmode --port $(PORT)

## demo: a job whose state lives only in memory survives two Spot reclaims on this machine
demo: $(STAMP) containers
	$(PY) -m localmode.demo

## bench: what a reclaim costs a job (64 MiB to 1 GiB), and wall time against a restart
bench: $(STAMP) containers
	$(PY) -m localmode.bench

## test: the whole test suite
test: $(STAMP) containers
	$(PY) -m pytest

## lint: ruff and mypy over the project
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy app.py chalicelib cli localmode agent infra

## package: the deployable template, infra/resources.json merged into Chalice's output
package: $(STAMP)
	$(PY) -m infra.package build/package

clean:
	rm -rf $(VENV) build .pytest_cache
