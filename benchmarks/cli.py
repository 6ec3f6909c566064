"""``python -m benchmarks``: time frcnn_fast against its NumPy reference and torchvision.

Examples (from the repository root)::

    python -m benchmarks                          # everything; what `make bench` runs
    python -m benchmarks --quick                  # shorter measurements
    python -m benchmarks --ops box_iou,encode_boxes --impls cpu,torchvision
    python -m benchmarks --ops box_ops            # a whole family (module name)
    python -m benchmarks --list                   # ops and their cases
    python -m benchmarks --ops nms --sizes 0 6,000  # each op's first case and labels with "6,000"
    python -m benchmarks --update-results         # write the committed benchmarks/results/
    python -m benchmarks --compare A.json B.json  # per-case ratios of two runs, with spread

Every implementation's output is compared once with the NumPy reference before it is timed;
a mismatch or an error is reported and makes the exit status 1 (2 for a usage/setup error).
Results go to ``<out>/bench-<device>.{json,md,png}`` (``<device>`` is ``cpu`` without a GPU,
else the GPU name, e.g. ``nvidia-h100-80gb-hbm3``). ``<out>`` is a fresh
``benchmarks/runs/<UTC time>/`` (git-ignored) unless ``--out`` or ``--update-results``
(``benchmarks/results/``, the committed runs) says otherwise: a plain run never overwrites the
committed figures.

A run starts by measuring the machine's memory bandwidth and multiply-add rate (a second or
so each; ``--no-roofline`` skips it) and gives every timed row the fraction of its roofline
bound that it reaches (``benchmarks/roofline.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import sys
import timeit
from pathlib import Path
from typing import List, Optional

import torch

from . import load as busy
from . import report, roofline
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
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"  # committed
RUNS_DIR = REPO_ROOT / "benchmarks" / "runs"  # git-ignored, one folder per run


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
        "--out",
        type=Path,
        default=None,
        help="output directory (default: a fresh benchmarks/runs/<UTC time>/)",
    )
    p.add_argument(
        "--update-results",
        action="store_true",
        help=f"write into {RESULTS_DIR.relative_to(REPO_ROOT)}/, the committed results",
    )
    p.add_argument(
        "--sizes",
        nargs="+",
        default=None,
        metavar="CASE",
        help="only the cases matching one of these: a plain number is a case index (0 = each "
        "op's first case), anything else a substring of the case label, e.g. --sizes 0 6,000 "
        "NHWC '128 ' (see --list)",
    )
    p.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("A.json", "B.json"),
        help="print per-case time ratios of two result files, with their spread, and exit",
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (there is none either when stderr is not a terminal)",
    )
    p.add_argument(
        "--tag", default="", help="suffix of the output file names (bench-<device>-<tag>.*)"
    )
    p.add_argument("--no-plot", action="store_true", help="do not write the .png")
    p.add_argument(
        "--no-roofline",
        action="store_true",
        help="do not measure the machine's bandwidth and flop rate at the start (the rows then "
        "have no roofline fraction)",
    )
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


def select_cases(ops, filters: Optional[List[str]]):
    """``ops`` restricted to the cases that match a filter (an index into the op's cases, or a
    substring of its label); ops left without a case are dropped."""
    if not filters:
        return ops

    def wanted(i, case):
        # a plain number is an index (a substring "0" would match most labels)
        return any(int(f) == i if f.isdigit() else f in case.label for f in filters)

    kept = []
    for op in ops:
        cases = [c for i, c in enumerate(op.cases) if wanted(i, c)]
        if cases:
            kept.append(dataclasses.replace(op, cases=cases))
    if not kept:
        raise SystemExit(f"error: no case matches --sizes {' '.join(filters)} (see --list)")
    return kept


def output_dir(args) -> Path:
    if args.update_results and args.out is not None:
        raise SystemExit("error: --update-results writes benchmarks/results/; drop --out")
    if args.update_results:
        return RESULTS_DIR
    if args.out is not None:
        return args.out
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out, n = RUNS_DIR / stamp, 1
    while out.exists():  # two runs in the same second
        n += 1
        out = RUNS_DIR / f"{stamp}-{n}"
    return out


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

    if args.compare:
        from .compare import compare

        return compare(*args.compare, log=log)

    if args.list:
        for op in all_ops():
            twin = op.torchvision_name or "no torchvision equivalent"
            log(f"{op.name} [{op.family}] - {op.description} (vs {twin})")
            for i, c in enumerate(op.cases):
                log(f"  {i:>2} {c.label:<22} {c.size:>12,} {op.size_unit}")
        return 0

    if args.threads < 1:
        raise SystemExit("error: --threads must be >= 1")
    ops = select_cases(select_ops(args.ops), args.sizes)
    out_dir = None if args.check_only else output_dir(args)
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
        sizes=args.sizes,
    )
    meta = report.collect_metadata(libs, threads=args.threads, dtype=dtype, settings=settings)
    log(report.header_line(meta).replace("**", ""))
    log(
        f"ops: {', '.join(op.name for op in ops)} | impls: {', '.join(impls)} | min_run_time {min_run_time}s\n"
    )

    if report.load_warning(meta):
        log(f"warning: {report.load_warning(meta)}\n")
    start = timeit.default_timer()
    peaks = {}
    if not (args.check_only or args.no_roofline):
        seconds = roofline.seconds_per_figure(min_run_time)
        for kind in dict.fromkeys(i.rsplit("-", 1)[-1] for i in impls if i != "reference"):
            log(f"measuring the roofline peaks ({kind}, ~{4 * seconds:.0f} s)...")
            peaks[kind] = roofline.measure_peaks(torch.device(kind), args.threads, dtype, seconds)
        meta["roofline"] = peaks
        log(report.peaks_line(meta) + "\n")
    spinners = busy.Spinners(args.busy, log)
    try:
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
            progress=not args.no_progress and sys.stderr.isatty(),
            peaks=peaks,
        )
    finally:
        spinners.stop()
    elapsed = timeit.default_timer() - start
    meta["elapsed_s"] = round(elapsed, 1)
    meta["device"]["load_average_at_end"] = report.loadavg()
    failures = [r for r in results if r.status in FAILED]

    if not args.check_only:
        log("")
        log(report.header_line(meta).replace("**", ""))
        if report.load_warning(meta):
            log(f"warning: {report.load_warning(meta)}")
        log(report.LEGEND)
        if report.peaks_line(meta):
            log(report.peaks_line(meta))
        log("")
        log(report.render_tables(ops, results, impls))
        log("")
        if report.inexact_note(meta, results):
            log(report.inexact_note(meta, results) + "\n")
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = f"bench-{report.device_slug()}"
        if args.dtype != "float32":
            stem += f"-{args.dtype}"
        if args.tag:
            stem += f"-{report.slugify(args.tag)}"
        if args.busy:  # the mean times under load, beside the usual files
            stem += f"-busy{args.busy}"
            log(busy.summary(args.busy, ops, results, impls, out_dir / f"{stem}-means.md"))
        json_path = out_dir / f"{stem}.json"
        md_path = out_dir / f"{stem}.md"
        report.write_json(json_path, meta, results)
        report.write_markdown(md_path, report.markdown_document(meta, ops, results, impls))
        written = [json_path, md_path]
        if not args.no_plot:
            from .plot import plot_results

            png_path = out_dir / f"{stem}.png"
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
