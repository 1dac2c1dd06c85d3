# Two commands do all set-up on a fresh machine: `make run` (the default experiment) and
# `make test` (the test suite). Both create .venv and install the project first, idempotently.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# use the pre-filled offline copy of the data sets when it sits beside the checkout
ifeq ($(DECA_TUNE_DATA),)
ifneq ($(wildcard ../shared/data),)
export DECA_TUNE_DATA := $(abspath ../shared/data)
endif
endif

.PHONY: install run test bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m deca_tune.search

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m deca_tune.bench

clean:
	rm -rf $(VENV) .pytest_cache
