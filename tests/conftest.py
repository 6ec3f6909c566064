"""Shared pytest / hypothesis configuration for the frcnn_fast test suite.

* Puts the repository root on ``sys.path`` so that ``import reference`` works when the suite is
  run from anywhere (``frcnn_fast.reference`` is the installed copy; the tests use that one).
* Registers the hypothesis profiles ``ci`` (default, reproducible) and ``dev`` (more examples);
  pick one with ``HYPOTHESIS_PROFILE=dev python -m pytest tests``.
* Registers the ``cuda`` marker. CUDA tests are skipped only when no GPU is visible; a missing or
  broken ``frcnn_fast._C`` is never a reason to skip (the test modules import it at top level).
"""
import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
for _p in (str(REPO_ROOT), str(TESTS_DIR)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev",
    max_examples=300,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: test runs on a CUDA device (skipped only when no GPU is visible)")
