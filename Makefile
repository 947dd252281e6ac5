# The two commands of the README: `make book` and `make test`. Each sets up what it needs.
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.invlatent-installed
NBDIR  := build/nbval
JB     := $(BIN)/jupyter-book

.PHONY: book test unit nbval book-check portability colab bench install clean

# --- environment -------------------------------------------------------------------------
# torch first: on a machine without CUDA, torch==2.13.0 (here: the CPU wheel on disk),
# so the package's `torch>=2.2` is already satisfied and no CUDA packages are pulled in.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	if ! command -v nvidia-smi >/dev/null 2>&1; then
	  $(BIN)/python -m pip install -q "torch==2.13.0"
	fi
	$(BIN)/python -m pip install -q -e ".[book,test]"
	touch $(STAMP)

install: $(STAMP)

# --- the book (main job; default profile: gpu with CUDA, else cpu) -------------------------
book: $(STAMP)
	$(BIN)/python -c "import invlatent; print('building the book at profile', invlatent.get_profile())"
	PATH="$(CURDIR)/$(BIN):$$PATH" $(JB) build . --builder html -W --keep-going
	@echo "Book: $(CURDIR)/_build/html/index.html"

# --- every test ----------------------------------------------------------------------------
test: $(STAMP)
	$(MAKE) --no-print-directory unit nbval book-check

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests invlatent

# nbval reads only .ipynb: convert each chapter of the toc with jupytext, run in this env.
nbval: $(STAMP)
	rm -rf $(NBDIR)
	$(BIN)/python tools/chapters.py to-ipynb $(NBDIR)
	INVLATENT_PROFILE=smoke MPLBACKEND=Agg $(BIN)/python -m pytest -q -p no:cacheprovider \
	  --nbval-lax --nbval-current-env --nbval-cell-timeout=600 $(NBDIR)

# Other CPUs on this one (not part of `make test`): PyTorch picks its kernels by
# ATEN_CPU_CAPABILITY and the thread count, so run the unit suite and nbval under the generic
# and the AVX2 kernels, each with 1 and 2 threads. All four combinations must pass.
portability: $(STAMP)
	failed=""
	for cap in default avx2; do
	  for threads in 1 2; do
	    echo "== portability: ATEN_CPU_CAPABILITY=$$cap OMP_NUM_THREADS=$$threads"
	    ATEN_CPU_CAPABILITY=$$cap OMP_NUM_THREADS=$$threads $(MAKE) --no-print-directory unit nbval \
	      || failed="$$failed $$cap/$$threads"
	  done
	done
	if [ -n "$$failed" ]; then echo "portability FAILED for:$$failed"; exit 1; fi
	echo "portability: all four combinations passed"

# The book at the smoke profile with warnings as errors (separate output folder).
book-check: $(STAMP)
	rm -rf _build/smoke
	INVLATENT_PROFILE=smoke PATH="$(CURDIR)/$(BIN):$$PATH" \
	  $(JB) build . --builder html --path-output _build/smoke -W --keep-going

# Regenerate the Colab notebooks (one per chapter, outside book/).
colab: $(STAMP)
	$(BIN)/python tools/chapters.py colab notebooks

# Benchmarks of every fast path against its reference (JSON into benchmarks/results/).
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf _build build
