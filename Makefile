# Two entry points on a fresh machine:
#   make demo  - create .venv, install, run PaDiM on the embedded demo dataset, print its table
#   make test  - create .venv, install with test extras, run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast test-real install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/padim-bench demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not real_data and not slow"

test-real: $(STAMP)
	$(BIN)/python -m pytest -q -m real_data

clean:
	rm -rf $(VENV) results/demo *.egg-info
