# The two commands: `make run` (a local demo) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_HOME ?= .demo-home

.PHONY: run test test-python test-extension xpi dist bench clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,server,desktop]'
	touch $@

run: $(VENV)/.installed
	$(PY) -m mailtracker --home $(DEMO_HOME) demo

extension/node_modules/.installed: extension/package.json extension/package-lock.json
	npm --prefix extension ci --no-audit --no-fund
	touch $@

test: test-extension test-python

test-python: $(VENV)/.installed
	$(PY) -m pytest

test-extension: extension/node_modules/.installed
	npm --prefix extension test
	npm --prefix extension run lint

xpi:
	$(PYTHON) packaging/build_xpi.py

# The release: wheel, sdist and .xpi in dist/, one version across them (tests/test_dist.py
# checks them). UPDATE_URL=https://you.example/mailtracker/updates.json also writes
# dist/updates.json and makes the add-on update itself from your copy of it.
UPDATE_URL ?=
dist: $(VENV)/.installed
	$(PY) packaging/build_dist.py --out dist $(if $(UPDATE_URL),--update-url $(UPDATE_URL))
	$(PY) -m twine check --strict dist/*.whl dist/*.tar.gz

# Figures, not tests: see bench/README.md (needs wrk and nginx-light for the server).
bench: $(VENV)/.installed
	-$(PY) bench/bench_server.py
	-$(PY) bench/bench_fold.py
	-$(PY) bench/bench_classify.py

clean:
	rm -rf $(VENV) $(DEMO_HOME) build dist helper/*.egg-info extension/node_modules
