# make test  : set up .venv, build the extension, run the whole test suite
# make bench : set up .venv, build the extension, run the benchmark suite
# Both reuse what exists: the venv is rebuilt only when requirements-dev.txt changes, and
# ninja recompiles only the sources that changed.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

# The nvcc on PATH may be a wrapper script; torch must find the real toolkit.
ifneq ($(wildcard /usr/local/cuda/bin/nvcc),)
export CUDA_HOME ?= /usr/local/cuda
endif
export MAX_JOBS ?= 2

.PHONY: test bench build env clean

$(VENV)/.installed: requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -r requirements-dev.txt
	touch $@

env: $(VENV)/.installed

build: env
	$(PY) -m pip install --no-build-isolation --no-deps -e .

test: build
	$(PY) -m pytest tests

bench: build
	$(PY) -m benchmarks

clean:
	rm -rf build *.egg-info frcnn_fast/_C*.so
