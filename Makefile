# Two commands for a fresh machine (Python 3.10+):  `make demo`  and  `make test`.
# Both bootstrap .venv idempotently: the stamp file is rebuilt only when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
# Override for a GPU build, e.g.  make test TORCH_SPEC="torch==2.13.0 --index-url ..."
TORCH_SPEC ?= torch==2.13.0
ESCNN_SPEC ?= escnn==1.0.11
# Tests run in one process per core (pytest-xdist, whole files per process so module fixtures are built once);
# TEST_WORKERS=0 runs them in this process, one after the other
TEST_WORKERS ?= auto
PYTEST = $(PY) -m pytest -q -n $(TEST_WORKERS) --maxprocesses 8 --dist loadfile
PY := $(VENV)/bin/python
STAMP := $(VENV)/.symwm-installed

.PHONY: venv demo test test-fast gallery bench clean

venv: $(STAMP)

# escnn goes last and without dependencies: its py3nj needs a Fortran compiler and is optional;
# installed before the project, every later pip call would complain about the missing py3nj.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m pip install --quiet --no-deps "$(ESCNN_SPEC)"
	$(PY) -c "import torch, escnn, gymnasium, pymunk, stable_baselines3, h5py, symwm"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/symwm demo

test: $(STAMP)
	$(PYTEST)

test-fast: $(STAMP)
	$(PYTEST) -m "not slow"

gallery: $(STAMP)
	$(VENV)/bin/symwm gallery --out docs/gallery.png

bench: $(STAMP)
	$(PY) benchmarks/env_speed.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
