"""Shared pytest / hypothesis configuration for the frcnn_fast test suite.

* Chooses which ``frcnn_fast`` the tests import: the source tree's when its extension is built
  there (``make build``: an editable install, or an in-place build), else the installed copy
  (``pip install .``), even when the suite is run from the checkout, whose root
  ``python -m pytest`` puts first on ``sys.path``. The repository root stays on ``sys.path``
  (last, then) for ``import reference``, the NumPy reference the tests compare with its
  installed copy ``frcnn_fast.reference``. tests/test_installed_copy.py guards this.
* Registers the hypothesis profiles ``ci`` (default, reproducible), ``dev`` (more examples) and
  ``quick`` (``ci`` with 5 examples, for runs under slow tools such as compute-sanitizer); pick
  one with ``HYPOTHESIS_PROFILE=dev python -m pytest tests``.
* Registers the ``cuda`` marker. CUDA tests are skipped only when no GPU is visible; a missing or
  broken ``frcnn_fast._C`` is never a reason to skip (the test modules import it at top level).
* Runs every test marked ``on_cuda_emu`` (the ``cuda_emu`` device of ``helpers.DEVICES``) inside
  ``cuda_emu.emulated``: its frcnn_fast ops run the CUDA kernels' code, emulated on the CPU, with
  schedules and launch caps drawn from a seed derived from the test's id.
"""

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent


def source_tree_is_built():
    """Whether the checkout's frcnn_fast package holds its compiled extension."""
    return any((REPO_ROOT / "frcnn_fast").glob("_C*.so")) or any(
        (REPO_ROOT / "frcnn_fast").glob("_C*.pyd")
    )


def _is_repo_root(entry):
    try:
        return Path(entry or ".").resolve() == REPO_ROOT
    except OSError:
        return False


if source_tree_is_built():
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
else:
    # The source tree's frcnn_fast has no _C: it must not shadow the installed copy.
    sys.path[:] = [p for p in sys.path if not _is_repo_root(p)] + [str(REPO_ROOT)]
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

import cuda_emu  # noqa: E402

# The function-scoped fixture is the emulated-CUDA routing, meant to span all examples.
_SHARED = {
    "deadline": None,
    "print_blob": True,
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
}
settings.register_profile("ci", max_examples=40, derandomize=True, database=None, **_SHARED)
settings.register_profile("dev", max_examples=300, **_SHARED)
settings.register_profile(
    "quick",
    parent=settings.get_profile("ci"),
    max_examples=5,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "cuda: test runs on a CUDA device (skipped only when no GPU is visible)"
    )
    config.addinivalue_line(
        "markers", "cuda_emu: test runs CUDA kernels in the CPU emulation (tests/cuda_emu)"
    )
    config.addinivalue_line(
        "markers",
        "on_cuda_emu: every frcnn_fast op the test calls runs on the emulated CUDA kernels",
    )
    config.addinivalue_line(
        "markers", "deliberate_race: runs a kernel with a data race on purpose (not under TSan)"
    )


@pytest.fixture(autouse=True)
def _emulated_cuda(request):
    if request.node.get_closest_marker("on_cuda_emu") is None:
        yield
        return
    # max_grid_dim=0: every launch draws the GPU's grid cap or a cap of 1-3 blocks, so small
    # inputs run both the one-pass and the grid-stride paths.
    with cuda_emu.emulated(seed=cuda_emu.seed_for(request.node.nodeid), workers=2, max_grid_dim=0):
        yield
