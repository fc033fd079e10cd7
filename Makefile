# Two commands after cloning: `make demo` and `make test`. Each creates .venv and installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test export clean-nbs check-sync nbtest pytest docs-check clean

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

export: $(STAMP)
	$(BIN)/nbdev-export && $(BIN)/nbdev-clean

clean:
	rm -rf demo-output _docs _proc
