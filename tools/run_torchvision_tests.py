"""Run torchvision's own unit tests with its ops routed to frcnn_fast (patch_torchvision).

torchvision's tests are not in its wheel: keep a copy of its ``test/`` files (test_ops.py,
test_models_detection_*.py, common_utils.py, ...) outside this repository and pass its path:

    python tools/run_torchvision_tests.py /path/to/vision-tests [pytest args...]

The patch is on for the whole session; ``--unpatched`` runs the same tests on torchvision's own
kernels (the baseline). The last line is a summary of pass/fail counts.
"""

import argparse
import sys
from pathlib import Path

import pytest


class _Patch:
    def __init__(self):
        self.patch = None

    def pytest_configure(self, config):
        import frcnn_fast

        self.patch = frcnn_fast.patch_torchvision().enable()

    def pytest_unconfigure(self, config):
        if self.patch is not None:
            self.patch.disable()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tests", type=Path, help="folder holding torchvision's test files")
    parser.add_argument("--unpatched", action="store_true", help="baseline: no patch")
    args, rest = parser.parse_known_args(argv)
    folder = args.tests.resolve()
    if not folder.is_dir():
        parser.error(f"{folder} is not a folder")
    sys.path.insert(0, str(folder))  # their tests import common_utils from their folder
    selected = rest or [str(p) for p in sorted(folder.glob("test_*.py"))]
    plugins = [] if args.unpatched else [_Patch()]
    return pytest.main(
        ["-q", "-p", "no:cacheprovider", "--rootdir", str(folder), "-rfE", *selected],
        plugins=plugins,
    )


if __name__ == "__main__":
    sys.exit(main())
