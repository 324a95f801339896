# `make demo` and `make test` work on a fresh machine with nothing but python3: they make a
# virtual environment (unless one is active), install doge into it, and run.
PYTHON ?= python3
VENV ?= .venv
ifdef VIRTUAL_ENV
BIN := $(VIRTUAL_ENV)/bin
else
BIN := $(VENV)/bin
endif
STAMP := $(BIN)/.doge-installed
DEMO ?= demo-out
PYTEST_ARGS ?=

.PHONY: install demo test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch is pinned first so that pip takes the 2.13.0 CPU build already on disk rather than
# resolving the range to a multi-gigabyte download.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test,demo]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m doge.demo $(DEMO)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(DEMO) .pytest_cache
