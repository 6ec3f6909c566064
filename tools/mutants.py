"""Mutation testing of the C++ and CUDA kernels: how many planted one-line bugs do the tests catch?

    python tools/mutants.py                      # the curated sample (tests/mutants/curated.txt)
    python tools/mutants.py --all                # every mutant the rules make (hours)
    python tools/mutants.py --all --files csrc/cpu/nms_kernel.cpp --limit 20 --seed 3
    python tools/mutants.py --list --all         # print the mutants, run nothing

Each mutant is one edit of one file under csrc/cpu, csrc/cuda or csrc/common: a comparison
flipped, a constant or bound off by one, a barrier or fence dropped, an atomic swapped, a
logical operator swapped. For each, the tool writes the mutated file, rebuilds what includes it
(frcnn_fast._C, in place, for csrc/cpu and csrc/common; the emulated CUDA build for csrc/cuda
and csrc/common; both incremental; export FRCNN_FAST_CPU_ONLY=1 as for `make build` to keep
_C CPU-only), runs the tests that cover the file (COVERAGE below) under a
per-mutant timeout, and puts the file back. A mutant is

* killed: a test failed (or timed out: an infinite loop is caught too);
* survived: every test passed. Either a test is missing or the mutant is equivalent (the same
  behaviour: e.g. a bound that no input can reach). Equivalent mutants are listed, each with a
  one-line reason, in tests/mutants/equivalent.txt; a survivor not listed there is a finding;
* stillborn: it did not compile (not counted).

The score is killed / (killed + survived). The report (--report, default tests/mutants/report.md)
lists every mutant and every survivor. Exit status 1 when a survivor is not explained.

It edits the checkout it lives in (every file is restored, also on Ctrl-C, and rebuilt at the
end): run it in a checkout nobody builds or tests in at the same time. Not part of `make test`.
The rules are this tool's own (regular expressions over code lines, comments and strings
blanked out): they target what the kernels' correctness hangs on -- barriers, atomics,
comparisons of IoU and scores, index bounds -- which a generic mutator does not know about.
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parent.parent
MUTANTS_DIR = REPO / "tests" / "mutants"
CURATED = MUTANTS_DIR / "curated.txt"
EQUIVALENT = MUTANTS_DIR / "equivalent.txt"
TARGETS = ("csrc/cpu/*.cpp", "csrc/cpu/*.h", "csrc/cuda/*.cu", "csrc/cuda/*.cuh", "csrc/common/*.h")

# (name, pattern, replacement). Applied to one match at a time, on code with comments and
# string literals blanked out (so the match positions are those of the real line).
RULES: List[Tuple[str, str, str]] = [
    ("drop-barrier", r"\b__syncthreads\(\);", ";"),
    ("drop-barrier", r"\b__syncwarp\([^;]*\);", ";"),
    ("drop-fence", r"\b__threadfence(_block)?\(\);", ";"),
    ("swap-atomic", r"\batomicMin\b", "atomicMax"),
    ("swap-atomic", r"\batomicMax\b", "atomicMin"),
    ("swap-atomic", r"\batomicOr\b", "atomicAnd"),
    ("swap-atomic", r"\batomicAdd\b", "atomicExch"),
    ("cmp-flip", r"(?<=[\w\)\]] )<=(?= )", "<"),
    ("cmp-flip", r"(?<=[\w\)\]] )>=(?= )", ">"),
    ("cmp-flip", r"(?<=[\w\)\]] )<(?= [\w\(])", "<="),
    ("cmp-flip", r"(?<=[\w\)\]] )>(?= [\w\(])", ">="),
    ("cmp-negate", r"(?<= )==(?= )", "!="),
    ("cmp-negate", r"(?<= )!=(?= )", "=="),
    ("logic-swap", r"(?<= )&&(?= )", "||"),
    ("logic-swap", r"(?<= )\|\|(?= )", "&&"),
    ("off-by-one", r"(?<= )\+ 1\b", "+ 2"),
    ("off-by-one", r"(?<= )- 1\b", "- 2"),
    ("off-by-one", r"(?<= )- 1\b", "+ 0"),
    ("constant", r"(?<![\w.])([2-9]|[1-9]\d+)(?![\w.'])", "<n+1>"),
    ("constant", r"(?<![\w.])0\.5(?![\w])", "0.25"),
]


def _cpu(*tests: str, k: str = "") -> Tuple[Tuple[str, ...], List[str]]:
    """The CPU-only _C, then ``tests`` without the emulated-CUDA ones (only those matching ``k``)."""
    return ("cpu",), [*tests, "-m", "not cuda_emu", *(["-k", k] if k else [])]


def _emu(*tests: str, k: str = "") -> Tuple[Tuple[str, ...], List[str]]:
    """The emulated CUDA build, then the emulated-CUDA tests of ``tests`` (matching ``k``)."""
    return ("emu",), [*tests, "-m", "cuda_emu", *(["-k", k] if k else [])]


def _both(*tests: str) -> Tuple[Tuple[str, ...], List[str]]:
    """Both builds (a header both backends include), then all of ``tests``."""
    return ("cpu", "emu"), list(tests)


def _t(*names: str) -> List[str]:
    return [f"tests/test_{n}.py" for n in names]


ROI = _t("roi_pool", "roi_align", "roi_shared", "multiscale_roi_align", "ties")
BOXES = _t("box_ops", "box_iou", "box_coding", "anchors")

# File patterns -> (builds, pytest arguments). The first matching entry wins. "cpu": the
# CPU-only _C; "emu": the emulated CUDA build.
COVERAGE: List[Tuple[str, Tuple[str, ...], List[str]]] = [
    ("csrc/cpu/box_area_kernel.cpp", *_cpu(*_t("box_ops"), k="area")),
    ("csrc/cpu/box_convert_kernel.cpp", *_cpu(*_t("box_ops"), k="convert")),
    ("csrc/cpu/clip_boxes_kernel.cpp", *_cpu(*_t("box_ops"), k="clip")),
    ("csrc/cpu/remove_small_boxes_kernel.cpp", *_cpu(*_t("box_ops", "threads"), k="small")),
    ("csrc/cpu/box_iou_kernel.cpp", *_cpu(*_t("box_iou"))),
    ("csrc/cpu/box_coding_kernel.cpp", *_cpu(*_t("box_coding"))),
    ("csrc/cpu/grid_anchors_kernel.cpp", *_cpu(*_t("anchors"))),
    ("csrc/cpu/match_boxes*", *_cpu(*_t("match_boxes"))),
    ("csrc/cpu/nms*", *_cpu(*_t("nms", "ties"))),
    ("csrc/cpu/radix_sort.h", *_cpu(*_t("nms"))),
    (
        "csrc/cpu/roi_pool*",
        *_cpu(*_t("roi_pool", "roi_pool_inference", "roi_shared", "ties", "cpu_isa")),
    ),
    (
        "csrc/cpu/roi_align*",
        *_cpu(*_t("roi_align", "roi_shared", "multiscale_roi_align", "cpu_isa")),
    ),
    ("csrc/cpu/roi_tasks.h", *_cpu(*ROI)),
    ("csrc/cpu/tile_loops.h", *_cpu(*ROI, *_t("cpu_isa"))),
    ("csrc/cpu/cpu_isa*", *_cpu(*_t("cpu_isa"))),
    ("csrc/cpu/layout_copy.h", *_cpu(*ROI)),
    ("csrc/cpu/parallel.h", *_cpu(*_t("box_ops", "box_iou", "box_coding", "threads"))),
    ("csrc/cpu/helper_pool.cpp", *_cpu(*_t("box_ops", "box_iou", "box_coding", "threads"))),
    ("csrc/cpu/*", *_cpu("tests")),
    ("csrc/cuda/nms*", *_emu(*_t("nms", "ties"))),
    ("csrc/cuda/match_boxes*", *_emu(*_t("match_boxes"))),
    (
        "csrc/cuda/roi_pool*",
        *_emu(*_t("roi_pool", "roi_shared", "roi_cuda_vs_cpu", "ties"), k="pool"),
    ),
    (
        "csrc/cuda/roi_align*",
        *_emu(*_t("roi_align", "roi_shared", "multiscale_roi_align", "roi_cuda_vs_cpu"), k="align"),
    ),
    ("csrc/cuda/roi_common.cuh", *_emu(*ROI, *_t("roi_cuda_vs_cpu"))),
    ("csrc/cuda/box_iou*", *_emu(*_t("box_iou", "cuda_vs_cpu"))),
    ("csrc/cuda/box_coding*", *_emu(*_t("box_coding", "cuda_vs_cpu"))),
    ("csrc/cuda/grid_anchors*", *_emu(*_t("anchors", "cuda_vs_cpu"))),
    ("csrc/cuda/*", *_emu(*_t("box_ops", "cuda_vs_cpu"))),
    ("csrc/common/nms_math.h", *_both(*_t("nms"))),
    ("csrc/common/match_math.h", *_both(*_t("match_boxes"))),
    ("csrc/common/roi_*", *_both(*ROI)),
    ("csrc/common/*", *_both(*BOXES)),
]


@dataclasses.dataclass
class Mutant:
    path: str  # relative to the repository root
    line: int  # 1-based, in the unmutated file
    rule: str
    original: str  # the whole line
    mutated: str

    @property
    def key(self) -> str:
        """How equivalent.txt names a mutant: file, line text and mutated text (no line number,
        so that an entry survives edits elsewhere in the file)."""
        return f"{self.path} | {self.original.strip()} | {self.mutated.strip()}"

    def label(self) -> str:
        return f"{self.path}:{self.line} [{self.rule}] `{self.original.strip()}` -> `{self.mutated.strip()}`"


@dataclasses.dataclass
class Outcome:
    mutant: Mutant
    status: str  # killed, survived, stillborn, timeout
    seconds: float
    detail: str = ""


# --- making mutants ---------------------------------------------------------------------------
def blank_comments_and_strings(text: str) -> str:
    """The file with comments and string/char literals replaced by spaces (newlines kept)."""

    def blank(m):
        return re.sub(r"[^\n]", " ", m.group(0))

    pattern = r"//[^\n]*|/\*.*?\*/|\"(\\.|[^\"\\\n])*\"|'(\\.|[^'\\\n])*'"
    return re.sub(pattern, blank, text, flags=re.S)


def rule_mutants(path: str) -> List[Mutant]:
    text = (REPO / path).read_text()
    lines = text.split("\n")
    code_lines = blank_comments_and_strings(text).split("\n")
    out = []
    for no, (line, code) in enumerate(zip(lines, code_lines), start=1):
        stripped = code.strip()
        if not stripped or stripped.startswith("#") or "TORCH_CHECK" in code:
            continue
        for name, pattern, repl in RULES:
            for m in re.finditer(pattern, code):
                new = str(int(m.group(0)) + 1) if repl == "<n+1>" else repl
                mutated = line[: m.start()] + new + line[m.end() :]
                out.append(Mutant(path, no, name, line, mutated))
    return out


def target_files(patterns: Optional[Sequence[str]]) -> List[str]:
    found = sorted({str(p.relative_to(REPO)) for t in TARGETS for p in REPO.glob(t)})
    if patterns:
        found = [f for f in found if any(fnmatch.fnmatch(f, p) for p in patterns)]
    return found


def curated_mutants(path: Path = CURATED) -> List[Mutant]:
    """Entries `file | text | replacement`: `text` occurs once in the file, on one line."""
    out = []
    for raw in path.read_text().splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        rel, find, repl = (part.strip() for part in raw.split(" | ", 2))
        lines = (REPO / rel).read_text().split("\n")
        hits = [i for i, line in enumerate(lines) if find in line]
        if len(hits) != 1 or lines[hits[0]].count(find) != 1:
            raise SystemExit(
                f"{path.name}: `{find}` must occur exactly once in {rel} ({len(hits)} lines)"
            )
        line = lines[hits[0]]
        out.append(Mutant(rel, hits[0] + 1, "curated", line, line.replace(find, repl)))
    return out


def load_equivalent(path: Path = EQUIVALENT) -> Dict[str, str]:
    """equivalent.txt: `file | original line | mutated line | reason`, one mutant a line."""
    out = {}
    if path.exists():
        for raw in path.read_text().splitlines():
            if raw.strip() and not raw.lstrip().startswith("#"):
                parts = [p.strip() for p in raw.split(" | ")]
                if len(parts) < 4:
                    raise SystemExit(
                        f"{path.name}: expected `file | original | mutated | reason`: {raw}"
                    )
                out[" | ".join(parts[:3])] = " | ".join(parts[3:])
    return out


# --- running them -----------------------------------------------------------------------------
def coverage(path: str) -> Tuple[Tuple[str, ...], List[str]]:
    for pattern, builds, args in COVERAGE:
        if fnmatch.fnmatch(path, pattern):
            return builds, args
    raise SystemExit(f"no tests mapped to {path}: add it to COVERAGE in {Path(__file__).name}")


def _env() -> Dict[str, str]:
    # FRCNN_FAST_CPU_ONLY as the checkout was built with (make build), or the rebuild of one
    # file would recompile everything with other flags.
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.setdefault("MAX_JOBS", "2")
    return env


BUILD_COMMANDS = {
    # The same in-place extension an editable install (make build) puts in frcnn_fast/.
    "cpu": [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
    "emu": [sys.executable, "-m", "tests.cuda_emu.build"],
}


def run(cmd: List[str], timeout: float) -> Tuple[Optional[int], str]:
    try:
        proc = subprocess.run(
            cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        out = (
            (exc.stdout or b"").decode(errors="replace")
            if isinstance(exc.stdout, bytes)
            else (exc.stdout or "")
        )
        return None, out
    return proc.returncode, proc.stdout + proc.stderr


def build(builds: Sequence[str], timeout: float) -> Tuple[bool, str]:
    for b in builds:
        rc, out = run(BUILD_COMMANDS[b], timeout)
        if rc != 0:
            return False, out[-3000:]
    return True, ""


def test_command(args: List[str]) -> List[str]:
    return [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *args]


def try_mutant(m: Mutant, build_timeout: float, test_timeout: float) -> Outcome:
    file = REPO / m.path
    original = file.read_text()
    lines = original.split("\n")
    assert lines[m.line - 1] == m.original, f"{m.path}:{m.line} changed since the mutants were made"
    lines[m.line - 1] = m.mutated
    builds, args = coverage(m.path)
    start = time.monotonic()
    try:
        file.write_text("\n".join(lines))
        ok, out = build(builds, build_timeout)
        if not ok:
            return Outcome(
                m,
                "stillborn",
                time.monotonic() - start,
                out.strip().splitlines()[-1:][0] if out.strip() else "",
            )
        rc, out = run(test_command(args), test_timeout)
    finally:
        file.write_text(original)
    took = time.monotonic() - start
    if rc is None:
        return Outcome(m, "timeout", took, f"tests ran past {test_timeout:.0f} s")
    tail = [line for line in out.strip().splitlines() if line.strip()][-1:] or [""]
    if rc == 0:
        return Outcome(m, "survived", took, tail[0])
    if rc == 5:  # no test collected: a mapping error, not a kill
        raise SystemExit(f"no test selected for {m.path} by {args}")
    failed = [line for line in out.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return Outcome(m, "killed", took, (failed[:1] or tail)[0])


# --- report -----------------------------------------------------------------------------------
def score(outcomes: Sequence[Outcome]) -> Tuple[int, int]:
    killed = sum(o.status in ("killed", "timeout") for o in outcomes)
    survived = sum(o.status == "survived" for o in outcomes)
    return killed, survived


def render(outcomes: Sequence[Outcome], equivalent: Dict[str, str], title: str) -> str:
    killed, survived = score(outcomes)
    stillborn = sum(o.status == "stillborn" for o in outcomes)
    rate = 100.0 * killed / max(killed + survived, 1)
    lines = [
        f"# Mutation testing: {title}",
        "",
        f"Generated by `python tools/mutants.py` (see its docstring). {len(outcomes)} mutants: "
        f"{killed} killed, {survived} survived, {stillborn} did not compile. "
        f"**Kill rate {rate:.0f}%** ({killed}/{killed + survived}).",
        "",
    ]
    survivors = [o for o in outcomes if o.status == "survived"]
    if survivors:
        lines += ["## Survivors", ""]
        for o in survivors:
            why = equivalent.get(o.mutant.key)
            lines.append(
                f"- {o.mutant.label()}: "
                + (f"equivalent: {why}" if why else "**not explained** (a missing test?)")
            )
        lines.append("")
    lines += ["## Every mutant", "", "| mutant | status | s | detail |", "|:--|:--|--:|:--|"]
    for o in outcomes:
        detail = o.detail.replace("|", "\\|")[:160]
        label = o.mutant.label().replace("|", "\\|")
        lines.append(f"| {label} | {o.status} | {o.seconds:.0f} | {detail} |")
    return "\n".join(lines) + "\n"


def write_report(path: Path, outcomes, equivalent, all_rules: bool, planned: int) -> None:
    title = "rule-generated mutants" if all_rules else "curated sample"
    if len(outcomes) < planned:
        title += f" ({len(outcomes)} of {planned} run so far)"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(outcomes, equivalent, title))


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--all", action="store_true", help="the rules' mutants instead of the curated list"
    )
    p.add_argument("--files", nargs="*", help="only files matching these patterns (fnmatch)")
    p.add_argument(
        "--limit", type=int, default=None, help="at most this many mutants (random sample)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the --limit sample")
    p.add_argument("--only", help="comma-separated numbers of mutants (as --list prints them)")
    p.add_argument("--list", action="store_true", help="print the mutants and exit")
    p.add_argument("--build-timeout", type=float, default=1800.0, help="seconds per rebuild")
    p.add_argument("--test-timeout", type=float, default=900.0, help="seconds per mutant's tests")
    p.add_argument("--report", type=Path, default=MUTANTS_DIR / "report.md")
    args = p.parse_args(argv)

    if args.all:
        mutants = [m for f in target_files(args.files) for m in rule_mutants(f)]
    else:
        mutants = curated_mutants()
        if args.files:
            mutants = [m for m in mutants if any(fnmatch.fnmatch(m.path, p) for p in args.files)]
    if args.only:
        mutants = [mutants[int(i) - 1] for i in args.only.split(",")]
    if args.limit is not None and len(mutants) > args.limit:
        mutants = sorted(
            random.Random(args.seed).sample(mutants, args.limit), key=lambda m: (m.path, m.line)
        )
    if args.list:
        for i, m in enumerate(mutants, start=1):
            print(f"{i:>4} {m.label()}")
        print(f"{len(mutants)} mutants")
        return 0

    equivalent = load_equivalent()
    outcomes: List[Outcome] = []
    touched = sorted({b for m in mutants for b in coverage(m.path)[0]})
    try:
        for i, m in enumerate(mutants, start=1):
            o = try_mutant(m, args.build_timeout, args.test_timeout)
            outcomes.append(o)
            print(
                f"[{i}/{len(mutants)}] {o.status:<9} {o.seconds:5.0f} s  {m.label()}  {o.detail}",
                flush=True,
            )
            # after every mutant: an interrupted run still leaves its report
            write_report(args.report, outcomes, equivalent, args.all, len(mutants))
    finally:
        # The files are back; so must the builds be, whatever happened above.
        ok, out = build(touched, args.build_timeout)
        if not ok:
            print(f"warning: rebuilding the unmutated sources failed:\n{out}", file=sys.stderr)
    write_report(args.report, outcomes, equivalent, args.all, len(mutants))
    killed, survived = score(outcomes)
    unexplained = [o for o in outcomes if o.status == "survived" and o.mutant.key not in equivalent]
    print(
        f"kill rate {100.0 * killed / max(killed + survived, 1):.0f}% ({killed}/{killed + survived}); report: {args.report}"
    )
    for o in unexplained:
        print(f"SURVIVED (not explained): {o.mutant.label()}")
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
