"""Run metadata, the per-op tables (console and markdown) and the JSON/markdown result files."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from .registry import SPEEDUPS, OpBench
from .roofline import fmt_fraction
from .runner import FAILED, Libraries, Result, available_impls

INEXACT_MARK = "†"

# 2: the measured peaks ("roofline") and each row's bytes, flops and roofline fraction
SCHEMA_VERSION = 2


# --- metadata -------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def gpu_name() -> Optional[str]:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else None


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def device_slug() -> str:
    """``cpu`` without a GPU, else the GPU's name (``nvidia-h100-80gb-hbm3``)."""
    name = gpu_name()
    return "cpu" if name is None else slugify(name)


def collect_metadata(libs: Libraries, *, threads: int, dtype: torch.dtype, settings: dict) -> dict:
    import torchvision

    frcnn_version = None
    build_info = None
    if libs.frcnn is not None:
        frcnn_version = getattr(libs.frcnn, "__version__", None)
        try:
            build_info = libs.frcnn.build_info()
        except Exception as exc:
            build_info = {"error": f"{type(exc).__name__}: {exc}"}
        if frcnn_version is None and isinstance(build_info, dict):
            frcnn_version = build_info.get("version")
    gpu = gpu_name()
    device = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "gpu": gpu,
        "platform": platform.platform(),
        "load_average_at_start": loadavg(),
    }
    if gpu is not None:
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        device["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        device["gpu_capability"] = f"{props.major}.{props.minor}"
        device["cuda_runtime"] = torch.version.cuda
    return {
        "schema": SCHEMA_VERSION,
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "numpy": np.__version__,
            "frcnn_fast": frcnn_version,
            "frcnn_fast_build_info": _jsonable(build_info),
        },
        "settings": dict(settings, dtype=str(dtype).replace("torch.", "")),
        "notes": list(libs.notes),
    }


def loadavg():
    """1-minute load average (other processes competing for the cores make CPU timings noisy)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


# A 1-minute load average above this fraction of the cores means other processes competed for
# them: CPU figures are then noisy, and the tables say so.
BUSY_LOAD_FRACTION = 0.5


def load_warning(meta: dict) -> str:
    """A warning when the machine was busy at the start or the end of the run, else ''."""
    d = meta.get("device", {})
    cores = d.get("cpu_count") or 1
    loads = [x for x in (d.get("load_average_at_start"), d.get("load_average_at_end")) if x]
    if not loads or max(loads) <= BUSY_LOAD_FRACTION * cores:
        return ""
    return (
        f"load average {max(loads)} on {cores} cores (other processes were running): "
        "CPU timings are noisy"
    )


def _jsonable(x):
    return json.loads(json.dumps(x, default=str))


def header_line(meta: dict) -> str:
    d, v, s = meta["device"], meta["versions"], meta["settings"]
    dev = f"{d['cpu']} ({d['threads']} threads)"
    if d.get("gpu"):
        dev += f" + {d['gpu']}"
    frcnn = v.get("frcnn_fast") or "n/a"
    info = v.get("frcnn_fast_build_info")
    if isinstance(info, dict) and info.get("backends"):
        frcnn += (
            f" [{', '.join(info['backends'])}"
            + (f", CUDA {info['cuda_version']}" if info.get("cuda_version") else "")
            + "]"
        )
    load = f"load {d.get('load_average_at_start')}"
    if d.get("load_average_at_end") is not None:
        load += f" -> {d['load_average_at_end']}"
    return (
        f"**{dev}** · {s['dtype']} · frcnn_fast {frcnn} · torch {v['torch']} · torchvision {v['torchvision']} "
        f"· numpy {v['numpy']} · Python {v['python']} · {meta['timestamp']} · {load}"
    )


# --- tables ---------------------------------------------------------------------------------
def fmt_ms(ms: Optional[float]) -> str:
    if ms is None:
        return "—"
    if ms >= 100:
        return f"{ms:,.0f}"
    return f"{ms:#.3g}"


def _cell(res: Optional[Result]) -> str:
    if res is None:
        return "—"
    if res.status in FAILED:
        return res.status.upper()
    mark = INEXACT_MARK if res.status == "inexact" else ""
    if res.timing is None:
        return "ok" + mark
    return fmt_ms(res.timing.median_ms) + mark


def table_rows(op: OpBench, results: Sequence[Result], impls: Sequence[str]) -> List[List[str]]:
    cols = available_impls(op, impls)
    speedups = [(a, b) for a, b in SPEEDUPS if a in cols and b in cols]
    by_key: Dict[tuple, Result] = {(r.case, r.impl): r for r in results if r.op == op.name}
    # one roofline column per implementation that has a fraction in this run
    bounded = [c for c in cols if any(r.roofline for (_, i), r in by_key.items() if i == c)]
    header = ["size"] + [f"{c} (ms)" for c in cols] + [f"{a} vs {b}" for a, b in speedups]
    header += [f"{c} of roofline" for c in bounded]
    measured = [
        c for c in cols if any(r.peak_mb is not None for (_, i), r in by_key.items() if i == c)
    ]
    header += [f"{c} peak (MB)" for c in measured]
    rows = [header]
    for case in op.cases:
        if not any((case.label, c) in by_key for c in cols):
            continue
        row = [case.label] + [_cell(by_key.get((case.label, c))) for c in cols]
        for a, b in speedups:
            ra, rb = by_key.get((case.label, a)), by_key.get((case.label, b))
            if ra and rb and ra.timing and rb.timing:
                row.append(f"{rb.timing.median_ms / ra.timing.median_ms:.2f}x")
            else:
                row.append("—")
        for c in bounded:
            res = by_key.get((case.label, c))
            row.append(fmt_fraction(res.roofline if res else None))
        for c in measured:
            res = by_key.get((case.label, c))
            row.append("—" if res is None or res.peak_mb is None else f"{res.peak_mb:,.1f}")
        rows.append(row)
    return rows


def markdown_table(rows: List[List[str]], left: int = 1) -> str:
    """``rows[0]`` is the header; the first ``left`` columns are left-aligned, the rest (figures)
    right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def line(cells):
        out = []
        for i, (c, w) in enumerate(zip(cells, widths)):
            out.append(c.ljust(w) if i < left else c.rjust(w))
        return "| " + " | ".join(out) + " |"

    sep = (
        "|"
        + "|".join(
            (":" + "-" * (w + 1)) if i < left else ("-" * (w + 1) + ":")
            for i, w in enumerate(widths)
        )
        + "|"
    )
    return "\n".join([line(rows[0]), sep] + [line(r) for r in rows[1:]])


def op_title(op: OpBench) -> str:
    twin = f"; vs `{op.torchvision_name}`" if op.torchvision_name else "; no torchvision equivalent"
    return f"#### `{op.name}` — {op.description}{twin}"


def render_tables(ops: Sequence[OpBench], results: Sequence[Result], impls: Sequence[str]) -> str:
    parts = []
    for op in ops:
        rows = table_rows(op, results, impls)
        if len(rows) > 1:
            parts.append(op_title(op) + "\n\n" + markdown_table(rows))
    return "\n\n".join(parts)


LEGEND = (
    "Median time per call in ms (`torch.utils.benchmark` `blocked_autorange`, device synchronised). "
    "`reference` = NumPy (`frcnn_fast.reference`), `cpu`/`cuda` = frcnn_fast kernels; "
    "`A vs B` = time(B) / time(A), above 1x when frcnn_fast is faster. "
    "`X of roofline` = the case's roofline bound (max of its compulsory bytes / the measured "
    "bandwidth and its flops / the measured flop rate) over X's time; `mem` or `fp` says which "
    "bound it is held to (benchmarks/README.md). "
    "`X peak (MB)`, where an op measures it: the peak memory of one call above its inputs."
)


def peaks_line(meta: dict) -> str:
    """The measured peaks of the run, one line per device type, or '' for a run without them."""
    lines = []
    for kind, p in (meta.get("roofline") or {}).items():
        rates = ", ".join(
            f"{v:,.0f} GFLOP/s at {k} thread{'s' if k != '1' else ''}"
            if k != "device"
            else f"{v:,.0f} GFLOP/s"
            for k, v in p["gflops"].items()
        )
        # Runs recorded before the fresh-memory figure existed lack it.
        fresh = (
            f"; a new buffer's allocate + fill {p['fresh_fill_gbs']:.1f}"
            if p.get("fresh_fill_gbs")
            else ""
        )
        lines.append(
            f"Roofline peaks ({kind}): {p['bandwidth_gbs']:.1f} GB/s (fill {p['fill_gbs']:.1f}, "
            f"copy {p['copy_gbs']:.1f}{fresh}), {p['matmul_dtype']} {rates}"
        )
    return "\n".join(lines)


def inexact_note(meta: dict, results: Sequence[Result]) -> str:
    if not any(r.status == "inexact" for r in results):
        return ""
    return (
        f"{INEXACT_MARK} torchvision's answer differs from the reference beyond the {meta['settings']['dtype']} "
        "tolerance (it computes in that dtype; frcnn_fast accumulates in float32)."
    )


def markdown_document(
    meta: dict, ops: Sequence[OpBench], results: Sequence[Result], impls: Sequence[str]
) -> str:
    lines = [header_line(meta), "", LEGEND, ""]
    if peaks_line(meta):
        lines += [peaks_line(meta).replace("\n", "  \n"), ""]
    if load_warning(meta):
        lines += [f"**Warning:** {load_warning(meta)}.", ""]
    lines += [render_tables(ops, results, impls), ""]
    note = inexact_note(meta, results)
    if note:
        lines += [note, ""]
    failures = [r for r in results if r.status in FAILED]
    if failures:
        lines += (
            ["**Failures:**", ""]
            + [f"- `{r.op}` {r.case} `{r.impl}`: {r.status}: {r.message}" for r in failures]
            + [""]
        )
    return "\n".join(lines)


# --- files ----------------------------------------------------------------------------------
def write_json(path: Path, meta: dict, results: Sequence[Result]) -> None:
    doc = dict(meta)
    doc["results"] = [r.as_dict() for r in results]
    doc["failures"] = [r.as_dict() for r in results if r.status in FAILED]
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n")


def write_markdown(path: Path, text: str) -> None:
    path.write_text(text)
