"""``python -m benchmarks``: time frcnn_fast against its NumPy reference and torchvision.

Examples (from the repository root)::

    python -m benchmarks                          # everything; what `make bench` runs
    python -m benchmarks --quick                  # shorter measurements
    python -m benchmarks --ops box_iou,encode_boxes --impls cpu,torchvision
    python -m benchmarks --ops box_ops            # a whole family (module name)
    python -m benchmarks --list                   # ops and their cases

Every implementation's output is compared once with the NumPy reference before it is timed;
a mismatch or an error is reported and makes the exit status 1 (2 for a usage/setup error).
Results go to ``<out>/bench-<device>.{json,md,png}`` (``<device>`` is ``cpu`` without a GPU,
else the GPU name, e.g. ``nvidia-h100-80gb-hbm3``).
"""

from __future__ import annotations

import argparse
import os
import timeit
from pathlib import Path
from typing import List, Optional

import torch

from . import load as busy
from . import report
from .registry import IMPLS, all_ops
from .runner import FAILED, REPO_ROOT, load_libraries, run

DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
DEFAULT_MIN_RUN_TIME = 0.5
QUICK_MIN_RUN_TIME = 0.05


def _csv(text: str) -> List[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark frcnn_fast (NumPy reference, C++ CPU and CUDA kernels) against torchvision.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="implementations: "
        + ", ".join(IMPLS)
        + " ('torchvision' = both torchvision-cpu and torchvision-cuda)",
    )
    p.add_argument(
        "--ops", type=_csv, default=None, help="comma-separated op or family names (default: all)"
    )
    p.add_argument(
        "--impls",
        type=_csv,
        default=None,
        help="comma-separated implementations (default: all available)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"min_run_time {QUICK_MIN_RUN_TIME}s instead of {DEFAULT_MIN_RUN_TIME}s",
    )
    p.add_argument(
        "--min-run-time",
        type=float,
        default=None,
        help="seconds per measurement (overrides --quick)",
    )
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument(
        "--dtype", choices=sorted(DTYPES), default="float32", help="input dtype (default float32)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the generated boxes (default 0)")
    p.add_argument(
        "--check", action="store_true", help="also require every output to match the cpu kernel's"
    )
    p.add_argument(
        "--check-only", action="store_true", help="verify outputs, time nothing, write no files"
    )
    p.add_argument(
        "--out", type=Path, default=REPO_ROOT / "benchmarks" / "results", help="output directory"
    )
    p.add_argument(
        "--tag", default="", help="suffix of the output file names (bench-<device>-<tag>.*)"
    )
    p.add_argument("--no-plot", action="store_true", help="do not write the .png")
    p.add_argument("--list", action="store_true", help="list ops and cases, then exit")
    p.add_argument("--busy", type=int, default=0, metavar="N", help=busy.HELP)
    return p


def select_ops(names: Optional[List[str]]):
    ops = all_ops()
    if not names:
        return ops
    known = {op.name for op in ops} | {op.family for op in ops}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"error: unknown op(s) {unknown}; known ops/families: {sorted(known)}")
    return [op for op in ops if op.name in names or op.family in names]


def select_impls(names: Optional[List[str]], cuda_ok: bool, log) -> List[str]:
    wanted = list(IMPLS) if not names else []
    for n in names or []:
        if n == "torchvision":
            wanted += ["torchvision-cpu", "torchvision-cuda"]
        elif n in IMPLS:
            wanted.append(n)
        else:
            raise SystemExit(
                f"error: unknown implementation {n!r}; choose from {list(IMPLS)} or 'torchvision'"
            )
    if not cuda_ok:
        dropped = [i for i in wanted if i.endswith("cuda")]
        if dropped and names:
            explicit = [n for n in names if n.endswith("cuda")]
            if explicit:
                log(f"warning: no CUDA device; skipping {', '.join(explicit)}")
        wanted = [i for i in wanted if not i.endswith("cuda")]
    return [i for i in IMPLS if i in wanted]


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)

    def log(msg: str) -> None:
        print(msg, flush=True)

    if args.list:
        for op in all_ops():
            twin = op.torchvision_name or "no torchvision equivalent"
            log(f"{op.name} [{op.family}] - {op.description} (vs {twin})")
            for c in op.cases:
                log(f"    {c.label:<22} {c.size:>12,} {op.size_unit}")
        return 0

    if args.threads < 1:
        raise SystemExit("error: --threads must be >= 1")
    ops = select_ops(args.ops)
    impls = select_impls(args.impls, torch.cuda.is_available(), log)
    if not impls:
        raise SystemExit("error: no implementation left to run")
    dtype = DTYPES[args.dtype]
    min_run_time = args.min_run_time or (QUICK_MIN_RUN_TIME if args.quick else DEFAULT_MIN_RUN_TIME)

    torch.set_num_threads(args.threads)
    try:
        libs = load_libraries(need_frcnn=any(i in ("cpu", "cuda") for i in impls))
    except RuntimeError as exc:
        log(f"error: {exc}")
        return 2
    for note in libs.notes:
        log(f"note: {note}")

    settings = dict(
        min_run_time_s=min_run_time,
        quick=args.quick,
        threads=args.threads,
        seed=args.seed,
        impls=impls,
        ops=[op.name for op in ops],
        check_against_cpu=args.check,
    )
    meta = report.collect_metadata(libs, threads=args.threads, dtype=dtype, settings=settings)
    log(report.header_line(meta).replace("**", ""))
    log(
        f"ops: {', '.join(op.name for op in ops)} | impls: {', '.join(impls)} | min_run_time {min_run_time}s\n"
    )

    load = meta["device"].get("load_average_at_start")
    if load is not None and load > 0.5 * (os.cpu_count() or 1):
        log(
            f"warning: load average {load} on {os.cpu_count()} cores: other processes will make CPU timings noisy\n"
        )
    start = timeit.default_timer()
    spinners = busy.Spinners(args.busy, log)
    results = run(
        ops,
        impls,
        libs,
        dtype=dtype,
        threads=args.threads,
        min_run_time=min_run_time,
        seed=args.seed,
        check_against_cpu=args.check,
        time_it=not args.check_only,
        log=log,
    )
    spinners.stop()
    elapsed = timeit.default_timer() - start
    failures = [r for r in results if r.status in FAILED]

    if not args.check_only:
        log("")
        log(report.LEGEND)
        log("")
        log(report.render_tables(ops, results, impls))
        log("")
        if report.inexact_note(meta, results):
            log(report.inexact_note(meta, results) + "\n")
        args.out.mkdir(parents=True, exist_ok=True)
        stem = f"bench-{report.device_slug()}"
        if args.dtype != "float32":
            stem += f"-{args.dtype}"
        if args.tag:
            stem += f"-{report.slugify(args.tag)}"
        if args.busy:  # the mean times under load, beside the usual files
            stem += f"-busy{args.busy}"
            log(busy.summary(args.busy, ops, results, impls, args.out / f"{stem}-means.md"))
        meta["elapsed_s"] = round(elapsed, 1)
        meta["device"]["load_average_at_end"] = report.loadavg()
        json_path = args.out / f"{stem}.json"
        md_path = args.out / f"{stem}.md"
        report.write_json(json_path, meta, results)
        report.write_markdown(md_path, report.markdown_document(meta, ops, results, impls))
        written = [json_path, md_path]
        if not args.no_plot:
            from .plot import plot_results

            png_path = args.out / f"{stem}.png"
            if plot_results(
                png_path, ops, results, title=report.header_line(meta).replace("**", "")
            ):
                written.append(png_path)
        log("wrote " + ", ".join(str(p) for p in written))

    log(f"{len(results)} {'checks' if args.check_only else 'measurements'} in {elapsed:.0f} s")
    if failures:
        log("")
        log(f"FAILED: {len(failures)} implementation/case pair(s) gave a wrong answer or an error:")
        for r in failures:
            log(f"  {r.op} {r.case} {r.impl}: {r.status.upper()}: {r.message}")
        return 1
    return 0
