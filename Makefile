# OpenFloat: every target installs what it needs first and is safe to run again.

VENV    := .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
STAMP   := $(VENV)/.installed
PORT    ?= 8787

.PHONY: setup containers browser run demo bench bench-api test lint package deploy drill undeploy clean

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

## browser: Debian's Chromium, which the web interface's tests drive headless (Playwright)
browser:
	@dpkg-query -W -f='$${db:Status-Status}' chromium 2>/dev/null | grep -qx installed || { \
	  echo "[browser] installing Debian's chromium"; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; \
	} || { echo "[browser] ERROR: apt-get could not install chromium (above): the web tests need it" >&2; exit 1; }

## run: start the local OpCenter (moto stands in for AWS; state lives in memory)
run: $(STAMP) containers
	$(PY) -m localmode --port $(PORT)

## demo: a job whose state lives only in memory survives two Spot reclaims on this machine
demo: $(STAMP) containers
	$(PY) -m localmode.demo

## bench: what a reclaim costs a job (64 MiB to 4 GiB), wall time against a restart, periodic checkpoints' cost
bench: $(STAMP) containers
	$(PY) -m localmode.bench

## bench-api: interruption events per second, API latency under 50 clients, a page at 100 and 100,000 jobs
bench-api: $(STAMP) containers
	@command -v wrk >/dev/null 2>&1 || { \
	  echo "[bench-api] installing Debian's wrk, the load generator"; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends wrk >/dev/null; \
	} || { echo "[bench-api] ERROR: apt-get could not install wrk (above)" >&2; exit 1; }
	$(PY) -m localmode.bench_api

## test: the whole test suite
test: $(STAMP) containers browser
	$(PY) -m pytest

## lint: ruff and mypy over the project
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy app.py chalicelib cli localmode agent infra

## package: the deployable template, infra/resources.json merged into Chalice's output
package: $(STAMP)
	$(PY) -m infra.package build/package

## deploy: the worker image and the stack on AWS: make deploy STACK=NAME [REGION=R BUCKET=B
##   SUBNETS=a,b SECURITY_GROUPS=sg VPC=vpc CHECKPOINT_INTERVAL=S DATA_BUCKETS=b1,b2] (needs the
##   AWS CLI and credentials; see README)
deploy: $(STAMP)
	bash infra/deploy.sh deploy

## drill: AWS FIS reclaims the Spot instance of one job: make drill STACK=NAME JOB=ID
drill:
	bash infra/deploy.sh drill

## undeploy: remove the stack, its workers and images, and what deploy uploaded: make undeploy STACK=NAME
undeploy:
	bash infra/deploy.sh undeploy

clean:
	rm -rf $(VENV) build .pytest_cache
