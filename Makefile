# Two entry points on a fresh machine:
#   make demo  - create .venv, install, run PaDiM on the embedded demo dataset, print its table
#   make test  - create .venv, install with the test and Ray extras, run the whole test suite
#                (the Ray tests included: a real local cluster, docs/ci.md); CI (.ci/run) runs it
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test-ray

.PHONY: demo test test-fast test-real install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,ray]'
	touch $(STAMP) $(TEST_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/padim-bench demo

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not real_data and not slow"

test-real: $(STAMP)
	$(BIN)/python -m pytest -q -m real_data

clean:
	rm -rf $(VENV) results/demo *.egg-info .ci-check
