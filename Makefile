# The two commands: `make run` (a local demo) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_HOME ?= .demo-home

.PHONY: run test bench clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(PY) -m mailtracker --home $(DEMO_HOME) demo

test: $(VENV)/.installed
	$(PY) -m pytest

clean:
	rm -rf $(VENV) $(DEMO_HOME) build dist helper/*.egg-info
