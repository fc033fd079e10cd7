# Two commands after cloning: `make demo` and `make test`. Each creates .venv and installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test export clean-nbs check-sync nbtest pytest docs docs-check lab readme sidebar clean

# Install the package in editable mode with the pinned versions from constraints.txt.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/segment-lib demo --out demo-output

# Notebooks -> library and clean notebooks must already agree with what is committed.
check-sync: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" bash tools/check_sync.sh

# One thread per notebook: nbdev-test already runs one notebook per core.
nbtest: $(STAMP)
	OMP_NUM_THREADS=1 PATH="$(abspath $(BIN)):$$PATH" nbdev-test --timing

pytest: $(STAMP)
	$(BIN)/python -m pytest -q tests

test: check-sync nbtest pytest

# The docs site: nbdev-docs renders it with Quarto into _docs/ (what .github/workflows/deploy.yaml publishes).
# Without Quarto on the PATH (it cannot be installed everywhere), say so and run the local check instead.
docs: $(STAMP)
	@if command -v quarto >/dev/null 2>&1; then PATH="$(abspath $(BIN)):$$PATH" nbdev-docs; \
	else echo "make docs: quarto is not on the PATH, so nbdev-docs cannot render the site here; running the local docs check instead (make docs-check)"; \
	$(MAKE) --no-print-directory docs-check; fi

# Every notebook -> HTML page (nbconvert) in _proc/docs_check/, links checked, pages loaded in headless Chromium.
docs-check: $(STAMP)
	$(BIN)/python tools/docs_check.py $(DOCS_CHECK_ARGS)

# JupyterLab on the course (JupyterLab refuses root without --allow-root: containers and CI machines run as root).
lab: $(STAMP)
	$(BIN)/jupyter lab nbs/ $(LAB_ARGS) $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# README.md from nbs/index.ipynb (tests/test_notebooks.py fails when they differ).
readme: $(STAMP)
	$(BIN)/python tools/docs/readme.py

# nbs/sidebar.yml from the notebooks: the lessons, then nbs/reference/ as "Library reference" (tests/test_notebooks.py
# fails when it is out of date).
sidebar: $(STAMP)
	$(BIN)/python -c "import sys; sys.path.insert(0, 'tools'); from docs import build; open('nbs/sidebar.yml', 'w').write(build.sidebar_yml())"

export: $(STAMP)
	$(BIN)/nbdev-export && $(BIN)/nbdev-clean

clean:
	rm -rf demo-output _docs _proc
