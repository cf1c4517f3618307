# Two commands on a fresh machine: `make demo` and `make test`. Both are idempotent.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Reinstall only when what we install from changes.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements/constraints.txt | sha256sum | cut -c1-12)

.PHONY: help venv demo test lint typecheck unit integration faults bench system-deps k8s-generate clean image image-lock k8s-e2e

help:
	@echo "make demo    create $(VENV), install, run the whole story on local processes"
	@echo "make test    install what tests need, run lint, types and the whole suite"
	@echo "make unit    fast tests only (no processes)"
	@echo "make faults  the fault matrix, with its table"
	@echo "make bench   benchmarks (medians, ratios against a same-run baseline)"
	@echo "make image   build the step image localhost/tritonops:dev with podman (no-op if unchanged)"
	@echo "make image-lock  regenerate image/requirements.lock (hashes of every file the image installs)"
	@echo "make k8s-e2e run the committed WorkflowTemplate as containers of that image"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY)
	@echo "installing into $(VENV) (pinned by requirements/constraints.txt)..."
	$(PY) -m pip install --quiet -c requirements/constraints.txt -e '.[mlflow,local,workflows,dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tritonops demo

system-deps:
	bash scripts/install-system-deps.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench workflows monitoring
	$(VENV)/bin/ruff format --check src tests bench workflows monitoring
	$(VENV)/bin/lint-imports .importlinter

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest tests -m "not integration" -q

integration: $(STAMP) system-deps
	$(PY) -m pytest tests -m integration -q

# The fault matrix alone, with its table (it is also part of `make test`).
faults: $(STAMP) system-deps
	$(PY) -m pytest tests/faults -q

# Benchmarks print medians and ratios against a baseline measured in the same run.
bench: $(STAMP)
	PY=../$(PY) bash bench/run_all.sh

test: $(STAMP) system-deps lint typecheck image
	$(PY) -m pytest tests -q

# The one image every workflow step runs, built with podman into localhost/tritonops:dev;
# skipped when nothing it is built from changed (the image is labelled with that hash).
image: system-deps
	bash scripts/build-image.sh

# image/requirements.lock from image/requirements.txt and requirements/constraints.txt: every
# file the image installs, by sha256 (the Dockerfile installs with --require-hashes). Run after
# changing either; never edit the lock by hand (tests/k8s/test_image.py checks it agrees).
image-lock:
	$(PYTHON) scripts/lock-image.py

# The committed WorkflowTemplate run as podman containers of that image (each step with the
# template's command, env, securityContext and volumes) against a real Triton, MLflow server and
# Pushgateway, plus the image's own checks. `make test` runs these too (tests/k8s_e2e).
k8s-e2e: $(STAMP) system-deps image
	$(PY) -m pytest tests/k8s/test_image.py tests/k8s_e2e -q

# Regenerate the WorkflowTemplate YAML from workflows/ (never run in CI: the test compares).
k8s-generate: $(STAMP)
	$(PY) workflows/outputs.py
	$(PY) -m monitoring.generate

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
