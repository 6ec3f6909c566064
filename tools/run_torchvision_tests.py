"""Run torchvision's own unit tests with its ops routed to frcnn_fast (patch_torchvision).

torchvision's tests are not in its wheel: keep a copy of its ``test/`` files outside this
repository and pass the folder:

    python tools/run_torchvision_tests.py /path/to/vision-tests --baseline [pytest args...]

The patch is on for the whole session (enabled before the test modules are imported, so
``from torchvision.ops import nms`` in a test module binds ours too). ``--unpatched`` runs the
same tests on torchvision's own kernels; ``--baseline`` first runs them unpatched in a child
process, so that a test which fails there as well (a test newer or older than the installed
torchvision, a download it would need) is counted apart: it says nothing about our kernels.
The summary gives passed / failed / skipped per file, every failure with its class:

- ``expected``: a documented deliberate difference (``EXPECTED_DIFFERENCES`` below, the same
  list as the README's "Deliberate differences" table), with its reason;
- ``unpatched too``: fails without the patch as well (``--baseline``);
- ``FAILURE``: anything else. The exit status is 1 when there is one, or when an expected
  difference no longer occurs (the list must be kept exact).

Reproducing the reference run (the files this was checked with, torchvision 0.28.0):
from ``pytorch/vision``, ``test/test_ops.py`` at commit 00673be3960268a837860cd6a05373d9861221d3
(its classes for RoI pooling, RoIAlign, MultiScaleRoIAlign, NMS with the generated opcheck
tests, box conversion, box area and the IoU family), ``test/test_models_detection_utils.py`` at
0275146c790539df36d8de66b77218957e768736, ``test/test_models_detection_anchor_utils.py`` at
05a1581f459f9f9dd4b7d4db23cde2a02aa4f249 and ``test/test_models_detection_negative_samples.py``
at 0256d651009f1c17faec52bb3ad6b5e35d04beb3, copied unchanged into one folder outside the
repository, with ``optests_failures_dict.json`` (``{"_version": 1, "data": {}}`` plus
torchvision's ``_description``) and two small stand-ins for what they import from
torchvision's test tree: ``common_utils.py`` (``assert_equal`` = ``assert_close`` with zero
tolerances, ``cpu_and_cuda()``, ``cpu_and_cuda_and_mps()``, the ``needs_cuda`` /
``needs_mps`` marks) and ``conftest.py`` (registers those marks and ``opcheck_only_one``, and
skips ``needs_cuda`` tests without a GPU and ``needs_mps`` tests always). Then run the
command above with ``--baseline``.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest

# nodeid pattern (fnmatch, relative to the tests folder) -> why it differs, on purpose.
EXPECTED_DIFFERENCES: dict[str, str] = {}


class _Patch:
    def __init__(self):
        self.patch = None

    def pytest_configure(self, config):
        import torch.testing._internal.optests as optests

        import frcnn_fast

        self.patch = frcnn_fast.patch_torchvision().enable()
        # test_ops.py generates opcheck tests (schema, autograd registration, fake tensors, AOT
        # dispatch) of the ops its tests call in the "torchvision" namespace; routed, those are
        # ours, so check that namespace too (else the generated tests would check nothing).
        self.generate = optests.generate_opcheck_tests

        def generate_opcheck_tests(*args, namespaces, **kwargs):
            return self.generate(*args, namespaces=[*namespaces, "frcnn_fast"], **kwargs)

        optests.generate_opcheck_tests = generate_opcheck_tests

    def pytest_unconfigure(self, config):
        import torch.testing._internal.optests as optests

        optests.generate_opcheck_tests = self.generate
        if self.patch is not None:
            self.patch.disable()


class _CountKernels:
    """Count, over all tests, the dispatcher ops of each library that ran (count_kernels)."""

    def __init__(self):
        from collections import Counter

        self.ops = Counter()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item):
        import frcnn_fast

        with frcnn_fast.count_kernels() as counter:
            yield
        self.ops.update(counter.ops)


class _Record:
    """Outcome of every test (and every module that failed to import), by node id."""

    def __init__(self):
        self.outcomes: dict[str, str] = {}
        self.messages: dict[str, str] = {}

    def pytest_collectreport(self, report):
        if report.failed:
            self.outcomes[report.nodeid] = "failed"
            self.messages[report.nodeid] = _last_line(report)

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome != "passed":
            previous = self.outcomes.get(report.nodeid)
            if previous == "failed":  # a teardown error after a failure: keep the failure
                return
            self.outcomes[report.nodeid] = report.outcome
            if report.outcome == "failed":
                self.messages[report.nodeid] = _last_line(report)


def _last_line(report) -> str:
    text = str(report.longrepr or "").strip().splitlines()
    return text[-1][:200] if text else ""


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def _expected_reason(nodeid: str):
    for pattern, reason in EXPECTED_DIFFERENCES.items():
        if fnmatch.fnmatchcase(nodeid, pattern):
            return pattern, reason
    return None


def _run(folder: Path, patched: bool, selected, rest, counter=None) -> _Record:
    record = _Record()
    plugins = [record] + ([_Patch()] if patched else []) + ([counter] if counter else [])
    args = ["-q", "-p", "no:cacheprovider", "--rootdir", str(folder), "-rfE"]
    args += ["--continue-on-collection-errors", *rest, *selected]
    pytest.main(args, plugins=plugins)
    return record


def summarize(outcomes, messages, baseline=None) -> int:
    """Print per-file counts and every failure's class; return the exit status."""
    counts = defaultdict(lambda: defaultdict(int))
    unexpected, expected_hit, not_ours = [], set(), []
    for nodeid, outcome in sorted(outcomes.items()):
        counts[_file_of(nodeid)][outcome] += 1
        if outcome != "failed":
            continue
        hit = _expected_reason(nodeid)
        if hit is not None:
            expected_hit.add(hit[0])
            print(f"expected       {nodeid}: {hit[1]}")
        elif baseline is not None and baseline.get(nodeid) == "failed":
            not_ours.append(nodeid)
            print(f"unpatched too  {nodeid}: {messages.get(nodeid, '')}")
        else:
            unexpected.append(nodeid)
            print(f"FAILURE        {nodeid}: {messages.get(nodeid, '')}")
    stale = [p for p in EXPECTED_DIFFERENCES if p not in expected_hit]
    for pattern in stale:
        print(f"STALE          expected difference {pattern!r} no longer fails (or was not run)")
    print()
    print(f"{'file':<48} {'passed':>7} {'failed':>7} {'skipped':>8}")
    for name, c in sorted(counts.items()):
        print(f"{name:<48} {c['passed']:>7} {c['failed']:>7} {c['skipped']:>8}")
    total = defaultdict(int)
    for c in counts.values():
        for k, v in c.items():
            total[k] += v
    print(
        f"total: {total['passed']} passed, {total['failed']} failed "
        f"({len(unexpected)} unexpected, {sum(1 for n in outcomes if outcomes[n] == 'failed') - len(unexpected) - len(not_ours)} "
        f"expected differences, {len(not_ours)} failing unpatched too), {total['skipped']} skipped"
    )
    return 1 if unexpected or stale else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tests", type=Path, help="folder holding torchvision's test files")
    parser.add_argument("--unpatched", action="store_true", help="torchvision's own kernels only")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also run unpatched (child process) and count tests failing there apart",
    )
    parser.add_argument(
        "--count-kernels",
        action="store_true",
        help="print how often each frcnn_fast:: and torchvision:: op ran over all tests",
    )
    parser.add_argument("--json-out", type=Path, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    folder = args.tests.resolve()
    if not folder.is_dir():
        parser.error(f"{folder} is not a folder")
    sys.path.insert(0, str(folder))  # their tests import common_utils from their folder
    names_files = any("::" in a or a.endswith(".py") for a in rest)
    selected = [] if names_files else [str(p) for p in sorted(folder.glob("test_*.py"))]

    baseline = None
    if args.baseline and not args.unpatched:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "baseline.json"
            cmd = [sys.executable, __file__, str(folder), "--unpatched", "--json-out", str(out)]
            subprocess.run(cmd + rest, check=False, stdout=subprocess.DEVNULL)
            baseline = json.loads(out.read_text())["outcomes"]
        print(f"baseline (unpatched): {sum(v == 'failed' for v in baseline.values())} failed")

    counter = _CountKernels() if args.count_kernels else None
    record = _run(folder, not args.unpatched, selected, rest, counter)
    if args.json_out is not None:
        args.json_out.write_text(json.dumps({"outcomes": record.outcomes}))
        return 0
    print()
    print("patched" if not args.unpatched else "unpatched", "run:")
    if counter is not None:
        for name, n in sorted(counter.ops.items()):
            print(f"kernel calls   {name}: {n}")
    return summarize(record.outcomes, record.messages, baseline)


if __name__ == "__main__":
    sys.exit(main())
