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

.PHONY: install demo test lint docs figures clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch is pinned first so that pip takes the 2.13.0 CPU build already on disk rather than
# resolving the range to a multi-gigabyte download.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test,demo,lint,docs]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m doge.demo $(DEMO)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q $(PYTEST_ARGS)

# mypy and import-linter walk packages on disk, and doge's live in four top-level folders
# (package-dir in pyproject.toml): they check a copy laid out as the installed package.
LINT_TREE := build/lint
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	rm -rf $(LINT_TREE) && mkdir -p $(LINT_TREE)
	cp -r doge $(LINT_TREE)/doge
	cp -r plugins $(LINT_TREE)/doge/plugins
	cp -r registry $(LINT_TREE)/doge/registry
	cp -r cli $(LINT_TREE)/doge/cli
	cd $(LINT_TREE) && $(abspath $(BIN))/mypy --config-file $(CURDIR)/pyproject.toml -p doge
	cd $(LINT_TREE) && $(abspath $(BIN))/lint-imports $(CURDIR)/pyproject.toml

# The documentation site (docs/README.md), strict: a warning (a broken link, a page in no
# toctree, a docstring that does not parse) fails the build, as on CI.
DOCS_OUT ?= build/docs
SPHINXOPTS ?= -W --keep-going -q
docs: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m sphinx -b html $(SPHINXOPTS) docs $(DOCS_OUT)
	@echo "docs: open $(DOCS_OUT)/index.html"

# Remake the site's figures from real runs (tiny model) and the doge serve screenshots (chromium).
figures: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python docs/figures/make_figures.py
	HF_HUB_OFFLINE=1 DOGE_UPDATE_SCREENSHOT=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/serve/test_serve_browser.py

clean:
	rm -rf $(DEMO) .pytest_cache build
