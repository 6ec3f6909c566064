"""``--busy N``: the suite timed while N other processes keep the cores busy.

A kernel that hands a few microseconds of work to a second thread looks fine on an idle
machine, where the thread wakes in microseconds, and falls off a cliff on a busy one, where
the thread waits for a core for up to a scheduler time slice (milliseconds) and the caller
waits for it at the join. Deployed detectors share their machine (data loading, other
models), so this is how they run.

The spinners are plain Python busy loops started for the run and killed after it. Each one
also stops by itself when its parent is gone or after ``MAX_SPIN_S`` seconds, so an
interrupted run leaves nothing behind. Only this machine is touched.

Under load the distribution of call times has a long tail (the calls that waited for a
thread), which the median hides: this mode reports the mean time per call, side by side
with torchvision's in the same run, and flags every case where frcnn_fast is slower.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from .registry import SPEEDUPS, OpBench
from .runner import Result, available_impls

HELP = (
    "run the suite while N spinning processes keep the cores busy (killed after the run); "
    "also reports the mean time per call vs torchvision"
)
# No run of the suite takes this long; a spinner whose parent died without killing it stops
# here at the latest.
MAX_SPIN_S = 3 * 3600

_SPIN = """
import os, sys, time
parent, end = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
n = 0
while True:
    n += 1
    if n % 100000 == 0 and (os.getppid() != parent or time.monotonic() > end):
        break
"""


class Spinners:
    """``n`` spinning processes, running from construction until :meth:`stop` (or exit)."""

    def __init__(self, n: int, log: Callable[[str], None] = print):
        self.log = log
        self.procs: List[subprocess.Popen] = [
            subprocess.Popen(
                [sys.executable, "-c", _SPIN, str(os.getpid()), str(MAX_SPIN_S)],
                stdin=subprocess.DEVNULL,
            )
            for _ in range(n)
        ]
        atexit.register(self.stop)  # also when the run raises
        if self.procs:
            log(f"load: {n} spinning process(es): pid {', '.join(str(p.pid) for p in self.procs)}")

    def stop(self) -> None:
        procs, self.procs = self.procs, []
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        if procs:
            self.log(f"load: {len(procs)} spinning process(es) stopped")


def _mean_ms(res: Optional[Result]) -> Optional[float]:
    return res.timing.mean_ms if res is not None and res.timing is not None else None


def mean_rows(op: OpBench, results: Sequence[Result], impls: Sequence[str]) -> List[List[str]]:
    """Rows of [size, ours (ms), theirs (ms), theirs/ours, verdict] for every speed-up pair."""
    cols = available_impls(op, impls)
    by_key = {(r.case, r.impl): r for r in results if r.op == op.name}
    rows = []
    for ours, theirs in SPEEDUPS:
        if ours not in cols or theirs not in cols:
            continue
        for case in op.cases:
            a, b = (
                _mean_ms(by_key.get((case.label, ours))),
                _mean_ms(by_key.get((case.label, theirs))),
            )
            if a is None or b is None:
                continue
            ratio = b / a
            rows.append(
                [
                    f"{op.name} {case.label}",
                    f"{a:#.3g}",
                    f"{b:#.3g}",
                    f"{ratio:.2f}x",
                    "" if ratio >= 1 else f"SLOWER than {theirs}",
                ]
            )
    return rows


def mean_table(ops: Sequence[OpBench], results: Sequence[Result], impls: Sequence[str]) -> str:
    """Markdown table of the mean time per call, frcnn_fast vs torchvision, every case."""
    from .report import markdown_table

    rows = [["case", "frcnn_fast mean (ms)", "torchvision mean (ms)", "speed-up", ""]]
    for op in ops:
        rows += mean_rows(op, results, impls)
    if len(rows) == 1:
        return "(no case has both a frcnn_fast and a torchvision time)"
    return markdown_table(rows)


def slower_cases(ops: Sequence[OpBench], results: Sequence[Result], impls: Sequence[str]):
    return [r[0] for op in ops for r in mean_rows(op, results, impls) if r[4]]


def summary(
    n: int,
    ops: Sequence[OpBench],
    results: Sequence[Result],
    impls: Sequence[str],
    path: Optional[Path] = None,
) -> str:
    """The mean-time table under load, with a verdict line; also written to ``path``."""
    slower = slower_cases(ops, results, impls)
    verdict = (
        f"{len(slower)} case(s) slower than torchvision: {', '.join(slower)}"
        if slower
        else "no case slower than torchvision"
    )
    text = (
        f"Mean time per call with {n} spinning process(es) keeping the cores busy "
        f"(speed-up = torchvision / frcnn_fast, same run).\n\n"
        f"{mean_table(ops, results, impls)}\n\n{verdict}\n"
    )
    if path is not None:
        path.write_text(text)
    return text
