# The entry points people type. They bootstrap .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install demo test lint format typecheck bench clean screenshots

help:
	@echo "make demo   build the demo shop and show its segments and emails"
	@echo "make test   lint, type-check and run the whole test suite"
	@echo "make lint   ruff and mypy only"
	@echo "make bench  run every benchmark and write docs/benchmarks.md"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,kafka,ml,dbt,spark]'
	@# test-only: gbstats pins numpy<2, which pyarrow refuses; its stats modules run on numpy 2
	$(BIN)/python -m pip install --quiet --no-deps 'gbstats>=0.8,<0.9'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/segmint demo

lint: $(STAMP)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

test: lint
	$(BIN)/python -m pytest -q -n auto --dist loadfile

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) demo-out demo-shop .pytest_cache .mypy_cache .ruff_cache

screenshots: $(STAMP)
	cd tests/browser && $(abspath $(BIN))/python screenshots.py
