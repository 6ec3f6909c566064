"""Anchor matching on FPN anchors at 800 x 1333 (268,569 anchors) against 10 to 2,000 ground
truths: the fused ``match_boxes`` against torchvision's ``Matcher`` on ``box_iou``'s matrix.

Time comes from the ordinary runner (``python -m benchmarks --ops match``). Peak memory needs
a process of its own per measurement: the runner's rows get it from one fresh process per
(implementation, case) (``OpBench.memory``, after the row is timed; the ``peak (MB)`` columns
and ``peak_mb`` in the JSON), and it has its own entry point too::

    python -m benchmarks.ops.match --memory [--threads 2] [--gts 10,100,500,2000]

Each (implementation, case) runs in a fresh Python process: inputs built, one small warm-up
call, then the peak resident set size is reset (``/proc/self/clear_refs``) and one call is
made; the figure is the growth of the peak RSS over the RSS before the call (the inputs
excluded, the outputs included). torchvision is not run at 2,000 ground truths: its G x A
float32 matrix and the ``box_iou`` temporaries need about 18 GB there.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import timeit
from pathlib import Path

import numpy as np

from ..data import grid_anchors_np, random_boxes
from ..registry import Case, OpBench, exact_compare, fmt_count, register
from ..roofline import Work
from .box_iou import AREA_FLOPS, IOU_FLOPS

# FPN on an 800 x 1333 image padded to 800 x 1344 (divisible by 32): strides 4..64, one size
# per level, three ratios: 268,569 anchors.
FPN_LEVELS = [((200, 336), 4, 32), ((100, 168), 8, 64), ((50, 84), 16, 128)]
FPN_LEVELS += [((25, 42), 32, 256), ((13, 21), 64, 512)]
NUM_ANCHORS = 268_569
THRESHOLDS = (0.7, 0.3, True)  # the RPN's high, low, allow_low_quality_matches
GT_COUNTS = (10, 100, 500, 2000)
TORCHVISION_MAX_GT = 500
# one fresh-process measurement: starting Python and torch, the inputs, two calls (torchvision
# at 500 ground truths: ~10 s on 2 loaded cores)
MEMORY_TIMEOUT_S = 300


def fpn_anchors() -> np.ndarray:
    levels = [grid_anchors_np(h, w, stride, sizes=(size,)) for (h, w), stride, size in FPN_LEVELS]
    anchors = np.concatenate(levels)
    assert anchors.shape == (NUM_ANCHORS, 4), anchors.shape
    return anchors


def _case(g):
    return Case(f"{fmt_count(NUM_ANCHORS)}x{fmt_count(g)}", NUM_ANCHORS * g, dict(g=g))


def make_inputs(case, rng):
    return {
        "gt_boxes": random_boxes(rng, case.params["g"], extent=(0.0, 800.0), min_side=8.0),
        "anchors": fpn_anchors(),
    }


def _reference(ctx):
    ref, i = ctx.lib, ctx.inputs
    return lambda: ref.match_boxes(i["gt_boxes"], i["anchors"], *THRESHOLDS)[0]


def _ours(ctx):
    lib, i = ctx.lib, ctx.inputs
    return lambda: lib.match_boxes(i["gt_boxes"], i["anchors"], *THRESHOLDS)[0]


def _torchvision(ctx):
    import torchvision
    from torchvision.models.detection._utils import Matcher

    matcher = Matcher(*THRESHOLDS)
    i = ctx.inputs
    return lambda: matcher(torchvision.ops.box_iou(i["gt_boxes"], i["anchors"]))


def _work(case, inputs, expected):
    # Boxes read, one int64 match per anchor written (what both sides return; the G x A IoU
    # matrix is not compulsory: the fused kernel never stores it). Flops: each IoU once, and
    # two comparisons per pair, for the best ground truth of each anchor and the best anchor
    # of each ground truth (the low-quality matches). Counted dense: a kernel that skipped the
    # pairs that cannot overlap could beat this bound.
    g, a = case.params["g"], NUM_ANCHORS
    flops = (IOU_FLOPS + 2) * g * a + AREA_FLOPS * (g + a)
    return Work(values=4 * (g + a), flops=flops, fixed_bytes=8 * a)


def _peak_memory(case, impl, threads):
    """``OpBench.memory`` of the match cases: the runner's rows get the fresh-process figure."""
    return measure_fresh(impl, case.params["g"], threads)["peak_mb"]


def _match_bench(name, gts, description, **fields):
    register(
        OpBench(
            name,
            "match",
            "anchor x GT pairs",
            [_case(g) for g in gts],
            make_inputs,
            _reference,
            _ours,
            compare=exact_compare,
            work=_work,
            memory=_peak_memory,
            description=description,
            order=45,
            **fields,
        )
    )


# Run as ``python -m benchmarks.ops.match``, this file is imported twice (by the package, which
# registers its ops, and as __main__): only the package's copy registers.
if __name__ != "__main__":
    _match_bench(
        "match_boxes",
        [g for g in GT_COUNTS if g <= TORCHVISION_MAX_GT],
        "FPN anchors (800x1333) x GT -> matches (0.7 / 0.3, low-quality matches)",
        torchvision=_torchvision,
        torchvision_name="torchvision Matcher(0.7, 0.3, True)(box_iou(gt, anchors))",
    )
    _match_bench(
        "match_boxes_many_gt",
        [g for g in GT_COUNTS if g > TORCHVISION_MAX_GT],
        "as match_boxes, more GT than torchvision's matrix fits in memory",
    )


# --- peak memory ------------------------------------------------------------------------------
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(field + r":\s+(\d+) kB", f.read()).group(1))


def measure_child(impl: str, g: int, threads: int) -> dict:
    """One measurement, in the calling (fresh) process."""
    import torch

    import frcnn_fast

    from ..data import rng_for

    torch.set_num_threads(threads)
    case = _case(g)
    arrays = make_inputs(case, rng_for(0, "match_boxes", case.label))
    gt = torch.from_numpy(arrays["gt_boxes"]).float()
    anchors = torch.from_numpy(arrays["anchors"]).float()
    if impl == "cpu":

        def call(a):
            return frcnn_fast.match_boxes(gt, a, *THRESHOLDS)
    else:
        import torchvision
        from torchvision.models.detection._utils import Matcher

        matcher = Matcher(*THRESHOLDS)

        def call(a):
            return matcher(torchvision.ops.box_iou(gt, a))

    call(anchors[:1000])  # libraries, thread pool and allocator warmed up outside the figure
    before = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # peak RSS := current RSS
    start = timeit.default_timer()
    out = call(anchors)
    seconds = timeit.default_timer() - start
    peak = _status_kb("VmHWM")
    del out
    return dict(impl=impl, gts=g, threads=threads, peak_mb=(peak - before) / 1024, seconds=seconds)


def measure_fresh(impl: str, g: int, threads: int, timeout: float = MEMORY_TIMEOUT_S) -> dict:
    """``measure_child`` in a fresh Python process (at most ``timeout`` seconds)."""
    code = (
        "import json, sys; from benchmarks.ops.match import measure_child; "
        f"print(json.dumps(measure_child({impl!r}, {g}, {threads})))"
    )
    import frcnn_fast

    root = Path(__file__).resolve().parents[2]
    # The child imports the frcnn_fast this process uses: run from the folder that holds it
    # (first on the child's sys.path), with the checkout after it for `benchmarks`. From the
    # checkout itself, an installed copy's tests would otherwise get the checkout's unbuilt one.
    home = Path(frcnn_fast.__file__).resolve().parents[1]
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=home, env=dict(os.environ, PYTHONPATH=path),
        capture_output=True, text=True, check=True, timeout=timeout,
    )  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_memory(gts, threads):
    rows = []
    for g in gts:
        for impl in ("cpu", "torchvision-cpu"):
            if impl != "cpu" and g > TORCHVISION_MAX_GT:
                continue
            row = measure_fresh(impl, g, threads)
            print(
                f"{impl:<16} {NUM_ANCHORS:,} x {g:>5,}: peak +{row['peak_mb']:9.1f} MB, "
                f"{row['seconds'] * 1e3:9.1f} ms (one call)",
                flush=True,
            )
            rows.append(row)
    return rows


def memory_table(rows) -> str:
    by = {(r["impl"], r["gts"]): r for r in rows}
    lines = [
        "| anchors x GT | cpu peak (MB) | torchvision-cpu peak (MB) | memory ratio | "
        "cpu (ms) | torchvision-cpu (ms) | speed-up |",
        "|:--|--:|--:|--:|--:|--:|--:|",
    ]
    for g in sorted({r["gts"] for r in rows}):
        ours, theirs = by.get(("cpu", g)), by.get(("torchvision-cpu", g))
        cells = [f"{NUM_ANCHORS:,} x {g:,}", f"{ours['peak_mb']:.1f}"]
        if theirs:
            cells += [
                f"{theirs['peak_mb']:,.0f}",
                f"{theirs['peak_mb'] / max(ours['peak_mb'], 1e-3):.0f}x",
                f"{ours['seconds'] * 1e3:,.0f}",
                f"{theirs['seconds'] * 1e3:,.0f}",
                f"{theirs['seconds'] / ours['seconds']:.1f}x",
            ]
        else:
            cells += ["—", "—", f"{ours['seconds'] * 1e3:,.0f}", "—", "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ops.match", description=__doc__)
    p.add_argument("--memory", action="store_true", help="measure peak memory (required)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--gts", default=",".join(map(str, GT_COUNTS)), help="comma-separated GT counts")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results")
    args = p.parse_args(argv)
    if not args.memory:
        p.error("nothing to do: pass --memory (timings: python -m benchmarks --ops match)")
    rows = measure_memory([int(g) for g in args.gts.split(",")], args.threads)
    table = memory_table(rows)
    print("\n" + table)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / "match-memory-cpu"
    meta = dict(threads=args.threads, load_average=os.getloadavg()[0], rows=rows)
    stem.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    stem.with_suffix(".md").write_text(
        f"Peak RSS growth of one call, {args.threads} threads, fresh process per figure "
        f"(load average {meta['load_average']:.1f}).\n\n{table}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
