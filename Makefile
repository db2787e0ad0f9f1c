# Two commands on a fresh machine: `make demo` and `make test`.
# Each bootstraps .venv from pyproject.toml on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The real 2024 polling-station master, when it is beside the repository (optional).
WILAYAH := $(wildcard ../shared/data/wilayah-2024.json)
DEMO_ARGS ?= $(if $(WILAYAH),--wilayah $(WILAYAH))

# The browser tests (tests/ui) drive Debian's chromium through Playwright.
CHROMIUM ?= /usr/bin/chromium

.PHONY: demo test check lint bench clean browser

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

test: check browser
	$(BIN)/pytest $(PYTEST_ARGS)

# Installs Debian's chromium for the browser tests when it can (root with apt-get); otherwise
# says loudly that those tests will be skipped (CI=true makes them fail instead).
browser:
	@if [ -x "$(CHROMIUM)" ]; then \
	  echo "browser tests use $(CHROMIUM)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
	  echo "!!! $(CHROMIUM) is missing and cannot be installed here (not root, or no apt-get)."; \
	  echo "!!! The browser tests of the operator's station (tests/ui) will be SKIPPED."; \
	  echo "!!! Install it with: sudo apt-get install chromium   (then: make test)"; \
	fi

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
