"""Timing helpers: device-synchronised clocks, warm-up, ``torch.utils.benchmark`` measurement.

Every clock read on a CUDA implementation is preceded by ``torch.cuda.synchronize()``, so an
asynchronous launch is never timed as if it had finished. Measurements use
``torch.utils.benchmark.Timer.blocked_autorange`` (blocks of calls between two synchronised
clock reads, the block size chosen so that the clock overhead is negligible) and report the
median over blocks. Nothing here uses ``time.time()``.
"""

from __future__ import annotations

import statistics
import timeit
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

import torch
import torch.utils.benchmark as tbench

# A call slower than this is measured with single calls instead of blocked_autorange, and a
# call slower than COLD_ONLY_S is not repeated at all (its first, checked call is the figure).
SLOW_CALL_S = 1.0
COLD_ONLY_S = 10.0
# blocked_autorange is topped up to MIN_BLOCKS blocks when that costs at most MAX_EXTRA_S.
MIN_BLOCKS = 5
MAX_EXTRA_S = 1.0


def make_clock(device: Optional[torch.device]) -> Callable[[], float]:
    """A ``timeit``-style clock that first waits for all work queued on ``device``."""
    if device is not None and device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()

        def cuda_clock() -> float:
            torch.cuda.synchronize(index)
            return timeit.default_timer()

        return cuda_clock
    return timeit.default_timer


def call_once(fn: Callable[[], Any], device: Optional[torch.device]) -> Tuple[Any, float]:
    """Run ``fn`` once (synchronised); return its result and the wall time in seconds."""
    clock = make_clock(device)
    start = clock()
    out = fn()
    return out, clock() - start


def warm_up(
    fn: Callable[[], Any],
    device: Optional[torch.device],
    max_calls: int = 3,
    max_time_s: float = 0.25,
) -> int:
    """A few untimed calls (caches, allocator, lazy CUDA module loading). Returns the count."""
    clock = make_clock(device)
    start = clock()
    calls = 0
    while calls < max_calls and clock() - start < max_time_s:
        fn()
        calls += 1
    return calls


@dataclass
class Timing:
    """Per-call times over the measured blocks. ``q1_ms``/``q3_ms`` (the quartiles; min/max
    with fewer than 4 blocks) bound the spread that ``--compare`` reports."""

    median_ms: float
    iqr_ms: float
    mean_ms: float
    min_ms: float
    runs: int  # total calls measured
    blocks: int  # measurements the median is taken over
    number_per_block: int
    method: str  # "blocked_autorange", "single-calls" or "cold-call"
    q1_ms: float = 0.0
    q3_ms: float = 0.0
    max_ms: float = 0.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def measure(
    fn: Callable[[], Any],
    device: Optional[torch.device],
    threads: int,
    min_run_time: float,
    first_call_s: float,
    label: str = "",
) -> Timing:
    """Time ``fn`` (already called once and checked, taking ``first_call_s``)."""
    clock = make_clock(device)
    if first_call_s >= COLD_ONLY_S:
        return _summary([first_call_s], 1, "cold-call")

    if first_call_s >= SLOW_CALL_S:
        # blocked_autorange would spend >= 2 calls estimating the block size (and Timer.timeit
        # adds 2 warm-up calls); one or two single calls say as much about a call of seconds.
        repeats = 2 if first_call_s * 2 <= max(min_run_time, 3 * SLOW_CALL_S) else 1
        times = [timed_block(fn, clock, 1, threads) for _ in range(repeats)]
        return _summary(times, 1, "single-calls")

    warm_up(fn, device)
    timer = tbench.Timer(
        stmt="fn()", globals={"fn": fn}, timer=clock, num_threads=threads, label=label
    )
    m = timer.blocked_autorange(min_run_time=min_run_time)
    times = list(m.times)
    # A call of tens of ms gives blocked_autorange only one or two blocks: add a few more blocks
    # of the same size so that the median and IQR mean something (at most ~MAX_EXTRA_S more).
    block_s = times[-1] * m.number_per_run
    extra = min(MIN_BLOCKS - len(times), int(MAX_EXTRA_S / max(block_s, 1e-9)))
    for _ in range(max(extra, 0)):
        times.append(timed_block(fn, clock, m.number_per_run, threads))
    return _summary(times, m.number_per_run, "blocked_autorange")


def timed_block(
    fn: Callable[[], Any], clock: Callable[[], float], number: int, threads: int
) -> float:
    """Seconds per call of ``number`` back-to-back calls between two (synchronised) clock reads,
    exactly like one block of ``blocked_autorange``."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        start = clock()
        for _ in range(number):
            fn()
        return (clock() - start) / number
    finally:
        torch.set_num_threads(previous)


def _summary(per_call_times_s, number_per_block: int, method: str) -> Timing:
    times = sorted(per_call_times_s)
    n = len(times)
    median = statistics.median(times)
    if n >= 4:
        q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive")
    else:
        q1, q3 = times[0], times[-1]
    return Timing(
        median_ms=median * 1e3,
        iqr_ms=(q3 - q1) * 1e3,
        mean_ms=statistics.fmean(times) * 1e3,
        min_ms=times[0] * 1e3,
        runs=n * number_per_block,
        blocks=n,
        number_per_block=number_per_block,
        method=method,
        q1_ms=q1 * 1e3,
        q3_ms=q3 * 1e3,
        max_ms=times[-1] * 1e3,
    )
