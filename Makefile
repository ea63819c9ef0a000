# The two commands: `make run` (a local demo) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_HOME ?= .demo-home
DEMO_PORT ?= 56789

.PHONY: run test system-packages test-python test-extension xpi dist bench clean

$(VENV)/.installed: setup.cfg setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,server,desktop]'
	touch $@

# The demo needs only what a user installs (no test extras); after 'make test' it uses that venv.
$(VENV)/.installed-run: setup.cfg setup.py pyproject.toml
	@if [ -f $(VENV)/.installed ] && [ $(VENV)/.installed -nt setup.cfg ] && [ $(VENV)/.installed -nt pyproject.toml ]; then \
	  touch $@; else \
	  $(PYTHON) -m venv $(VENV) && $(PY) -m pip install --quiet --upgrade pip && \
	  $(PY) -m pip install --quiet -e '.[server,desktop]' && touch $@; fi

run: $(VENV)/.installed-run
	$(PY) -m mailtracker --home $(DEMO_HOME) demo --port $(DEMO_PORT)

extension/node_modules/.installed: extension/package.json extension/package-lock.json
	npm --prefix extension ci --no-audit --no-fund
	touch $@

# As root on Debian this installs what packaging/ci-packages.txt lists; elsewhere it names
# what is missing, and the tests that need it are skipped, each saying why.
test: system-packages
	$(MAKE) --no-print-directory test-extension test-python

system-packages:
	@$(PYTHON) packaging/system_packages.py
	@$(PYTHON) packaging/older_thunderbird.py

test-python: $(VENV)/.installed
	$(PY) -m pytest

test-extension:
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory extension-tests; \
	elif [ "$$CI" = true ]; then echo "npm is missing: the add-on's tests cannot run" >&2; exit 1; \
	else echo "SKIPPED the add-on's tests and web-ext lint: npm is missing (see above)" >&2; fi

extension-tests: extension/node_modules/.installed
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
