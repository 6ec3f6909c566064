"""``python -m benchmarks.detector_ab [--repeats N]``: the detector benchmark with calls with and
without ``patch_torchvision()`` alternated (AB, BA, ...), median ratio and spread
(:func:`benchmarks.ops.detector.main`)."""

import sys

from .ops.detector import main

if __name__ == "__main__":
    sys.exit(main())
