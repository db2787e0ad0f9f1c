# Two commands on a fresh machine: `make demo` and `make test`.
# Each bootstraps .venv from pyproject.toml on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The real 2024 polling-station master, when it is beside the repository (optional).
WILAYAH := $(wildcard ../shared/data/wilayah-2024.json)
DEMO_ARGS ?= $(if $(WILAYAH),--wilayah $(WILAYAH))

.PHONY: demo test check lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,national]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/c1hub demo $(DEMO_ARGS)

check: $(STAMP)
	$(BIN)/ruff check hub client tests bench
	$(BIN)/ruff format --check hub client tests bench
	$(BIN)/mypy

test: check
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
