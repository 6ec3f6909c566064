# make test     : set up .venv, build the extension and the emulated CUDA build, run all tests
# make bench    : set up .venv, build the extension, run the benchmark suite
# make lint     : ruff (lint + format check), clang-format and hygiene hooks via pre-commit
# make format   : rewrite the tree in the house style (ruff format/fix, clang-format)
# make sanitize : the emulated CUDA kernels' tests under ASan+UBSan, then under TSan
# make mutants  : plant one-line bugs in csrc (tools/mutants.py), report which the tests miss
# All reuse what exists: the venv is rebuilt only when requirements-dev.txt changes, and
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

.PHONY: test bench build emu sanitize env clean lint format mutants

$(VENV)/.installed: requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -r requirements-dev.txt
	touch $@

env: $(VENV)/.installed

build: env
	$(PY) -m pip install --no-build-isolation --no-deps -e .

# csrc/cuda compiled for the CPU, with the CUDA emulator (tests/cuda_emu): test-only, never installed.
emu: env
	$(PY) -m tests.cuda_emu.build

test: build emu
	$(PY) -m pytest tests

# The sanitizer runtimes must be loaded before Python (the build step imports what it built);
# the tests marked cuda_emu are the ones that run emulated CUDA kernels. setarch -R: TSan needs
# the classic memory layout.
CXX ?= g++
# Few hypothesis examples (the 'quick' profile): the instrumented kernels run 3-10x slower, and
# what the sanitizers look for shows on the first inputs or not at all; --durations names the
# slowest tests, to keep the whole under 45 minutes on two cores.
# --capture=sys: a sanitizer's report goes to file descriptor 2 and the process ends at once
# (halt_on_error); captured at the descriptor level, as pytest does by default, it would be lost.
SANITIZE_TESTS ?= tests -p no:cacheprovider --durations=15 --capture=sys
SANITIZE_PROFILE = HYPOTHESIS_PROFILE=quick
# libstdc++ preloaded too: the sanitizers' exception interceptors must find it at start-up.
ASAN_ENV = FRCNN_CUDA_EMU_VARIANT=address \
  LD_PRELOAD="$$($(CXX) -print-file-name=libasan.so) $$($(CXX) -print-file-name=libstdc++.so)" \
  ASAN_OPTIONS=detect_leaks=0:protect_shadow_gap=0:alloc_dealloc_mismatch=0:halt_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# One intra-op thread under TSan: torch's own parallel loops then run on the calling thread
# instead of libgomp's, whose start TSan cannot see (a worker reading a tensor just written
# would look like a race). TSan checks the emulated kernels, which run on the emulator's own
# threads either way; tests that ask for more threads are covered by tsan.supp.
TSAN_ENV = FRCNN_CUDA_EMU_VARIANT=thread OMP_NUM_THREADS=1 \
  LD_PRELOAD="$$($(CXX) -print-file-name=libtsan.so) $$($(CXX) -print-file-name=libstdc++.so)" \
  TSAN_OPTIONS=halt_on_error=1:report_signal_unsafe=0:suppressions=$(abspath tests/cuda_emu/tsan.supp)
# Each half first proves that its sanitizer sees deliberately broken kernels (canaries), then
# runs every test of the emulated CUDA kernels under it. The halves run side by side (one
# pytest process each: two cores busy instead of one); each half's output is printed whole
# when it ends (--output-sync), and either failing fails the target.
# The sanitized tests compare the emulated kernels with the CPU ones, which any build of _C
# has: a checkout without one (a fresh clone) gets the CPU-only build, minutes quicker than
# nvcc's; one that has a build keeps its kind (`make build`).
sanitize: env
	if ls frcnn_fast/_C*.so > /dev/null 2>&1; then $(MAKE) --no-print-directory build; \
	else FRCNN_FAST_CPU_ONLY=1 $(PY) -m pip install --no-build-isolation --no-deps -e .; fi
	$(MAKE) -j2 --output-sync=target --no-print-directory sanitize-address sanitize-thread

.PHONY: sanitize-address sanitize-thread
sanitize-address:
	$(ASAN_ENV) $(PY) -m tests.cuda_emu.build --variant address
	$(ASAN_ENV) $(PY) -m tests.cuda_emu.canaries address
	$(ASAN_ENV) $(SANITIZE_PROFILE) $(PY) -m pytest $(SANITIZE_TESTS) -m cuda_emu

sanitize-thread:
	$(TSAN_ENV) setarch $$(uname -m) -R $(PY) -m tests.cuda_emu.build --variant thread
	$(TSAN_ENV) setarch $$(uname -m) -R $(PY) -m tests.cuda_emu.canaries thread
	$(TSAN_ENV) $(SANITIZE_PROFILE) setarch $$(uname -m) -R $(PY) -m pytest $(SANITIZE_TESTS) -m "cuda_emu and not deliberate_race"

# Hooks are 'language: system': they run the venv's pinned tools, so the venv goes first on PATH.
LINT_PATH = PATH="$(abspath $(VENV))/bin:$$PATH"
CXX_SOURCES = git ls-files -z '*.cpp' '*.h' '*.cu' '*.cuh'

lint: env
	$(LINT_PATH) pre-commit run --all-files --show-diff-on-failure

format: env
	$(LINT_PATH) ruff check --fix --exit-zero .
	$(LINT_PATH) ruff format .
	$(CXX_SOURCES) | $(LINT_PATH) xargs -0 clang-format -i

bench: build
	$(PY) -m benchmarks

# Not part of `make test` (each mutant is a rebuild and a test run). It edits and restores
# csrc/ in this checkout: nothing else may build or test here meanwhile. MUTANTS_ARGS=--all
# runs every mutant of the rules instead of the curated sample (hours).
MUTANTS_ARGS ?=
mutants: build emu
	$(PY) tools/mutants.py $(MUTANTS_ARGS)

clean:
	rm -rf build *.egg-info frcnn_fast/_C*.so
