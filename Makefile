# The two entry points of README.md: `make` (set up, then run the main job) and `make test`.
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: all setup test lint
all: setup
	$(BIN)/snakemake --cores $(CORES) all

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml scripts/setup.sh
	bash scripts/setup.sh

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/snakemake --lint
