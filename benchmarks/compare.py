"""``python -m benchmarks --compare A.json B.json``: per-case speed ratios of two runs.

For every (op, case, implementation) timed in both files the table gives both medians, the
ratio ``time(A) / time(B)`` (above 1x when B is faster) and its spread: the ratio of the
quartiles, from ``q1(A) / q3(B)`` to ``q3(A) / q1(B)``. A spread that contains 1x means the
two runs do not tell the case apart (marked ``~``). Files written before the quartiles were
recorded fall back to ``median +- iqr / 2``. Both runs' load averages are shown: a loaded
machine makes CPU timings noisy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .report import fmt_ms, load_warning, markdown_table

Key = Tuple[str, str, str]  # (op, case label, impl)


def load_run(path: Path) -> dict:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: cannot read benchmark results {path}: {exc}") from exc
    if not isinstance(doc, dict) or "results" not in doc:
        raise SystemExit(f"error: {path} is not a benchmark results file (no 'results')")
    return doc


def quartiles(r: dict) -> Tuple[float, float, float]:
    """(q1, median, q3) in ms of one result entry."""
    med = r["median_ms"]
    if r.get("q1_ms") and r.get("q3_ms"):
        return r["q1_ms"], med, r["q3_ms"]
    half = (r.get("iqr_ms") or 0.0) / 2
    return max(med - half, 1e-12), med, med + half


def timed(doc: dict) -> Dict[Key, dict]:
    return {
        (r["op"], r["size_label"], r["impl"]): r
        for r in doc["results"]
        if r.get("median_ms") is not None and r.get("status") in ("ok", "inexact")
    }


def run_line(name: str, path: Path, doc: dict) -> str:
    d = doc.get("device", {})
    cpu = d.get("cpu", "?") + (f" + {d['gpu']}" if d.get("gpu") else "")
    start, end = d.get("load_average_at_start"), d.get("load_average_at_end")
    return (
        f"{name} = {path}: {doc.get('timestamp', '?')}, {cpu}, {d.get('threads', '?')} threads, "
        f"load {start} -> {end} on {d.get('cpu_count', '?')} cores"
    )


def fmt_ratio(x: float) -> str:
    return f"{x:.2f}x" if x >= 0.1 else f"{x:.2g}x"


def ratio_rows(a: dict, b: dict) -> List[List[str]]:
    ta, tb = timed(a), timed(b)
    rows = [["op", "case", "impl", "A (ms)", "B (ms)", "A / B", "spread"]]
    for key in ta:  # A's order: ops and cases as that run listed them
        if key not in tb:
            continue
        qa1, ma, qa3 = quartiles(ta[key])
        qb1, mb, qb3 = quartiles(tb[key])
        lo, hi = qa1 / qb3, qa3 / qb1
        mark = " ~" if lo <= 1.0 <= hi else ""
        rows.append(
            [
                *key,
                fmt_ms(ma),
                fmt_ms(mb),
                fmt_ratio(ma / mb) + mark,
                f"{fmt_ratio(lo)}-{fmt_ratio(hi)}",
            ]
        )
    return rows


def compare(path_a: Path, path_b: Path, log=print) -> int:
    a, b = load_run(path_a), load_run(path_b)
    log(run_line("A", path_a, a))
    log(run_line("B", path_b, b))
    for name, doc in (("A", a), ("B", b)):
        warning: Optional[str] = load_warning(doc)
        if warning:
            log(f"warning: run {name}: {warning}")
    rows = ratio_rows(a, b)
    if len(rows) == 1:
        log("no (op, case, implementation) was timed in both runs")
        return 1
    only = len(timed(a).keys() ^ timed(b).keys())
    log("")
    log(markdown_table(rows, left=3))
    log("")
    log(
        "A / B = median time of A over B (above 1x: B faster); spread = quartile ratios "
        "q1(A)/q3(B) to q3(A)/q1(B); ~ = the spread contains 1x (no clear difference)."
    )
    if only:
        log(f"{only} (op, case, implementation) timed in only one of the runs are left out")
    return 0
