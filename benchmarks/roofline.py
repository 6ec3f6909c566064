"""How far each case is from what the machine allows: its roofline bound.

At the start of a run the two peaks of the machine are measured through torch, each for about
a second:

* **memory bandwidth**: a ``fill_`` of a float32 buffer (bytes written / time) and a ``copy_``
  between two such buffers (bytes read + bytes written / time), at the run's thread count. The
  buffers are at least 4x all the last-level caches together (``buffer_mib``), so this is DRAM
  traffic. The bound uses the larger of the two.
* for reference, not in the bound: **allocate and fill**, ``torch.empty(n).fill_``, a new buffer
  each time. This is the least an op that returns a new tensor pays for its output: on a CPU
  every first touch of a page faults and the kernel zeroes the page, so a large fresh output
  costs several times what writing into touched memory does. The bound holds kernels to the
  touched-memory figure all the same; ``fresh_fill_gbs`` shows how much of a gap is the
  allocation.
* **float32 multiply-add throughput**: ``torch.mm`` of two square float32 matrices
  (``2 n^3`` flops: a multiply-add counts 2) on one thread and at the run's thread count (on a
  GPU: one large matmul in full float32, TF32 off).

Every case declares its :class:`Work`: the compulsory bytes (each input read once, each output
written once, at the benchmark dtype's size) and its arithmetic (flops, a multiply-add = 2;
what else counts is written next to each op's definition). A timed row then gets

    bound time = max(bytes / bandwidth, flops / flop rate at the run's thread count)
    fraction   = bound time / measured median time

A fraction of 1 is a kernel that moves its data once at full bandwidth (or keeps the multiply-
add units busy); small cases whose data stays in the caches can exceed 1, since the bandwidth
is DRAM's. The figures are a ruler, not a promise: an op with little arithmetic per byte is
held to the bandwidth alone, even when its real cost is latency (NMS's sequential choices).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import torch
import torch.utils.benchmark as tbench

from .timing import make_clock

# Buffers for the bandwidth figures: at least 256 MiB each on a CPU, and 4x all its last-level
# caches together (a many-chiplet part has hundreds of MiB); 1 GiB on a GPU (20x an H100's L2).
BUFFER_MIB = {"cpu": 256, "cuda": 1024}
CACHE_MULTIPLE = 4
# Matmul sizes: large enough for the BLAS to reach its steady state on every thread.
MATMUL_N_CPU_1_THREAD = 1024
MATMUL_N_CPU_THREADS = 2048
MATMUL_N_CUDA = 8192
MAX_SECONDS = 1.0  # per figure, full runs
MIN_SECONDS = 0.25  # per figure, --quick and shorter


def seconds_per_figure(min_run_time: float) -> float:
    """About a second per peak on a full run, a quarter on a quick one."""
    return min(MAX_SECONDS, max(MIN_SECONDS, 2.0 * min_run_time))


@dataclass(frozen=True)
class Work:
    """Compulsory work of one case: ``values`` floating-point values read or written once
    (inputs + outputs, in the benchmark dtype), ``fixed_bytes`` of data whose size does not
    follow the dtype (int64 indices, bool masks), and ``flops``."""

    values: float
    flops: float
    fixed_bytes: float = 0.0

    def nbytes(self, itemsize: int) -> float:
        return self.values * itemsize + self.fixed_bytes

    def __add__(self, other: "Work") -> "Work":
        return Work(
            self.values + other.values,
            self.flops + other.flops,
            self.fixed_bytes + other.fixed_bytes,
        )


def last_level_cache_mib() -> float:
    """All last-level cache instances of this machine together, in MiB (Linux sysfs; 0 where
    it cannot be read)."""
    caches = {}
    for index in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cache/index[0-9]*"):
        try:
            level = int((index / "level").read_text())
            shared = (index / "shared_cpu_list").read_text().strip()
            size = (index / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        if (index / "type").exists() and (index / "type").read_text().strip() == "Instruction":
            continue
        kib = float(size[:-1]) * (1024 if size.endswith("M") else 1) if size[-1] in "KM" else 0
        caches[(level, shared)] = kib / 1024
    if not caches:
        return 0.0
    top = max(level for level, _ in caches)
    return sum(mib for (level, _), mib in caches.items() if level == top)


def buffer_mib(kind: str) -> int:
    if kind != "cpu":
        return BUFFER_MIB.get(kind, BUFFER_MIB["cuda"])
    return int(max(BUFFER_MIB["cpu"], CACHE_MULTIPLE * last_level_cache_mib()))


def _median_s(stmt: str, env: dict, device: torch.device, threads: int, seconds: float) -> float:
    timer = tbench.Timer(stmt=stmt, globals=env, timer=make_clock(device), num_threads=threads)
    return timer.blocked_autorange(min_run_time=seconds).median


def measure_peaks(device: torch.device, threads: int, dtype: torch.dtype, seconds: float) -> dict:
    """The bandwidth and flop-rate peaks of ``device`` (see the module docstring)."""
    kind = device.type
    # The kernels compute half types in float32: their flop rate is float32's.
    mm_dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    mib = buffer_mib(kind)
    n = mib * 2**20 // 4
    src = torch.empty(n, dtype=torch.float32, device=device).fill_(1.0)
    dst = torch.empty_like(src).fill_(2.0)  # pages touched before the clock starts
    fill_s = _median_s("dst.fill_(3.0)", {"dst": dst}, device, threads, seconds)
    copy_s = _median_s("dst.copy_(src)", {"dst": dst, "src": src}, device, threads, seconds)
    del src, dst
    # What an op that returns a new tensor pays at least: allocate and write it (a CPU's
    # first touch of each page faults, and the kernel zeroes the page first).
    fresh_s = _median_s(
        "torch.empty(n, device=device).fill_(3.0)",
        {"torch": torch, "n": n, "device": device},
        device,
        threads,
        seconds,
    )
    fill_gbs, copy_gbs = n * 4 / fill_s / 1e9, 2 * n * 4 / copy_s / 1e9
    fresh_gbs = n * 4 / fresh_s / 1e9

    if kind == "cuda":
        sizes = {"device": MATMUL_N_CUDA}
    else:
        sizes = {"1": MATMUL_N_CPU_1_THREAD}
        if threads > 1:
            sizes[str(threads)] = MATMUL_N_CPU_THREADS
    gflops = {}
    for key, size in sizes.items():
        a = torch.randn(size, size, dtype=mm_dtype, device=device)
        b = torch.randn(size, size, dtype=mm_dtype, device=device)
        c = torch.empty_like(a)
        env = {"torch": torch, "a": a, "b": b, "c": c}
        t = threads if key == "device" else int(key)
        gflops[key] = (
            2.0 * size**3 / _median_s("torch.mm(a, b, out=c)", env, device, t, seconds) / 1e9
        )
        del a, b, c
    return {
        "bandwidth_gbs": round(max(fill_gbs, copy_gbs), 2),
        "fill_gbs": round(fill_gbs, 2),
        "copy_gbs": round(copy_gbs, 2),
        "fresh_fill_gbs": round(fresh_gbs, 2),
        "gflops": {k: round(v, 1) for k, v in gflops.items()},
        "threads": threads,
        "matmul_dtype": str(mm_dtype).replace("torch.", ""),
        "matmul_n": sizes,
        "buffer_mib": mib,
        "last_level_cache_mib": last_level_cache_mib() if kind == "cpu" else None,
        "seconds_per_figure": seconds,
        "method": (
            f"median of torch.utils.benchmark blocked_autorange (~{seconds:g} s each): "
            f"fill_ of {mib} MiB float32 (bytes written / s) and copy_ between two such buffers "
            f"((bytes read + written) / s) at {threads} thread(s); bound bandwidth = the larger; "
            f"for reference (not in the bound), empty + fill_ of a new buffer of that size; "
            f"torch.mm of square {str(mm_dtype).replace('torch.', '')} matrices, 2 n^3 flops / s"
        ),
    }


def flop_rate_gflops(peaks: dict, threads: int) -> Optional[float]:
    rates = peaks.get("gflops", {})
    return rates.get("device", rates.get(str(threads)))


def row_figures(
    work: Work, itemsize: int, median_ms: float, peaks: Optional[dict], threads: int
) -> Dict[str, float]:
    """The JSON fields of one timed row: its work, achieved rates and roofline fraction."""
    nbytes = work.nbytes(itemsize)
    seconds = median_ms / 1e3
    out = {
        "bytes": nbytes,
        "flops": work.flops,
        "achieved_gbs": nbytes / seconds / 1e9,
        "achieved_gflops": work.flops / seconds / 1e9,
    }
    rate = flop_rate_gflops(peaks or {}, threads)
    if peaks and peaks.get("bandwidth_gbs") and rate:
        memory_s = nbytes / (peaks["bandwidth_gbs"] * 1e9)
        compute_s = work.flops / (rate * 1e9)
        bound_s = max(memory_s, compute_s)
        out.update(
            bound_ms=bound_s * 1e3,
            bound_by="memory" if memory_s >= compute_s else "compute",
            roofline_fraction=bound_s / seconds,
        )
    return out


def fmt_fraction(row: Optional[dict]) -> str:
    """``"34% mem"`` / ``"8% fp"`` (which of the two bounds the case is held to), else ``—``."""
    if not row or row.get("roofline_fraction") is None:
        return "—"
    f = row["roofline_fraction"]
    pct = f"{f * 100:.0f}%" if f >= 0.095 else f"{f * 100:.1g}%"
    return pct + (" mem" if row.get("bound_by") == "memory" else " fp")
