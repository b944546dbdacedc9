# The two entry points of README.md: `make` (set up, then run the main job) and `make test`.
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
# pytest-xdist workers: whole test files spread over the cores (tests/conftest.py shares the cores out)
TEST_JOBS ?= $(CORES)
# --durations: the log names the slowest tests with their seconds (the SLURM and rehearsal runs among them: ran, not skipped)
# --no-loadscope-reorder: files in collection order, the slow ones first (tests/conftest.py), not by test count
PYTEST := $(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder --durations=12

.PHONY: all setup test test-fast lint gpu-rehearsal
# then the outputs go into DVC's cache (dvc.lock unchanged where the run reproduced the committed results), so that
# `dvc exp run` keeps them and the way back from an experiment (`dvc exp apply`, or `git checkout` + `dvc checkout`)
# restores them in seconds
all: setup
	$(BIN)/snakemake --cores $(CORES) all
	mkdir -p estimates/demucs   # the demucs stage's output, empty where blend.second names no Demucs
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc commit --force --quiet dvc.yaml

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-demucs.txt pyproject.toml scripts/setup.sh
	bash scripts/setup.sh

test: setup
	$(PYTEST)

# The edit loop's tier: every test but the slow ones (whole workflow runs, DVC, SLURM, the paper rehearsal)
test-fast: setup
	$(PYTEST) -m "not slow and not gpu"

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/snakemake --lint

# The paper rehearsal on CUDA with the paper's AMP, the gpu-marked tests, paper-size training and separation speed
# (bench/gpu_rehearsal.py); exits 3 with a message where PyTorch sees no GPU.
gpu-rehearsal: setup
	$(BIN)/python bench/gpu_rehearsal.py
