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

.PHONY: book test unit typecheck prose code-width nbval nbval-cuda book-check browser install-check portability colab dist bench install clean

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
	$(BIN)/python -c "from invlatent.book import get_profile; print('building the book at profile', get_profile())"
	PATH="$(CURDIR)/$(BIN):$$PATH" $(JB) build . --builder html -W --keep-going
	@echo "Book: $(CURDIR)/_build/html/index.html"

# --- every test ----------------------------------------------------------------------------
test: $(STAMP)
	$(MAKE) --no-print-directory unit typecheck prose code-width nbval nbval-cuda book-check browser install-check

unit: $(STAMP)
	$(BIN)/python -m pytest -q -m "not install" tests invlatent

# The type check of the public API (mypy, pinned in the [test] extra; what it checks: [tool.mypy]
# in pyproject.toml).
typecheck: $(STAMP)
	$(BIN)/python -m mypy

# The wheel in a fresh venv, used like a pip user and like Colab (tests marked `install`:
# build the wheel, install it, run two Colab notebooks from outside the repository; ~3 min).
install-check: $(STAMP)
	$(BIN)/python -m pytest -q -m install tests

# Every number in chapter prose comes from a cell (myst-nb glue), never typed by hand.
prose: $(STAMP)
	$(BIN)/python tools/check_prose.py

# Code cells fit the text column (88 characters a line), so no cell scrolls sideways.
code-width: $(STAMP)
	$(BIN)/python tools/check_code_width.py

# nbval reads only .ipynb: convert each chapter of the toc with jupytext, run in this env.
nbval: $(STAMP)
	rm -rf $(NBDIR)
	$(BIN)/python tools/chapters.py to-ipynb $(NBDIR)
	INVLATENT_PROFILE=smoke MPLBACKEND=Agg $(BIN)/python -m pytest -q -p no:cacheprovider \
	  --nbval-lax --nbval-current-env --nbval-cell-timeout=600 $(NBDIR)

# Every chapter again on a simulated CUDA device (invlatent.testing.simulated_cuda): the CPU build
# of torch playing CUDA, so a tensor left on the wrong device raises what CUDA raises. This is the
# GPU path of the book (Colab), checked on a machine without a GPU.
nbval-cuda: $(STAMP)
	rm -rf $(NBDIR)-cuda
	$(BIN)/python tools/chapters.py to-ipynb --simulated-cuda $(NBDIR)-cuda
	INVLATENT_PROFILE=smoke MPLBACKEND=Agg $(BIN)/python -m pytest -q -p no:cacheprovider \
	  --nbval-lax --nbval-current-env --nbval-cell-timeout=600 $(NBDIR)-cuda

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

# The smoke book in headless Chromium, offline: math rendered, every image loaded.
# Installs Debian's chromium first when it is missing and we are root with apt-get;
# without a browser the check prints SKIP and the reason.
browser: $(STAMP)
	if ! command -v chromium >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] \
	    && command -v apt-get >/dev/null 2>&1; then
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends chromium \
	    || echo "browser: could not install chromium"
	fi
	$(BIN)/python tools/check_browser.py _build/smoke/_build/html

# Regenerate the Colab notebooks (one per chapter, outside book/).
colab: $(STAMP)
	$(BIN)/python tools/chapters.py colab notebooks

# A release: sdist and wheel into dist/, checked by twine (uploading is a separate, manual step).
dist: $(STAMP)
	$(BIN)/python -m pip install -q "build>=1.2" "twine>=5"
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/python -m twine check --strict dist/*
	$(BIN)/python -c "import glob, os, sys; w = glob.glob('dist/*.whl')[0]; n = os.path.getsize(w); \
	  print(w, n, 'bytes'); sys.exit(f'{w} is over 25 MB' if n > 25 * 2**20 else 0)"

# Benchmarks of every fast path against its reference (JSON into benchmarks/results/).
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf _build build dist
