"""Runs op x case x implementation: build inputs, check each output once, then time it."""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from .data import rng_for
from .registry import IMPL_SPECS, IMPLS, Context, OpBench, allclose_compare
from .roofline import fmt_fraction, row_figures
from .timing import Timing, call_once, measure

REPO_ROOT = Path(__file__).resolve().parent.parent

# (rtol, atol) per benchmark dtype; atol is multiplied by the op's atol_scale.
TOLERANCES = {
    torch.float32: (1e-4, 1e-5),
    torch.float64: (1e-9, 1e-10),
    torch.float16: (1e-2, 1e-3),
    torch.bfloat16: (3e-2, 1e-2),
}
HALF_DTYPES = (torch.float16, torch.bfloat16)
# Statuses that count as a failure (non-zero exit status).
FAILED = ("mismatch", "error")


@dataclass
class Result:
    op: str
    family: str
    case: str
    size: int
    size_unit: str
    impl: str
    status: str  # "ok", "mismatch", "error", or "inexact" (half-precision torchvision, timed)
    timing: Optional[Timing] = None
    first_call_ms: Optional[float] = None
    message: str = ""
    # bytes, flops, achieved rates, bound time and roofline fraction (roofline.row_figures)
    roofline: Optional[Dict[str, Any]] = None
    peak_mb: Optional[float] = None  # OpBench.memory's figure, where the op declares one

    def as_dict(self) -> dict:
        d = {
            "op": self.op,
            "family": self.family,
            "size_label": self.case,
            "size": self.size,
            "size_unit": self.size_unit,
            "impl": self.impl,
            "device_type": {"reference": "numpy"}.get(self.impl, self.impl.rsplit("-", 1)[-1]),
            "status": self.status,
            "first_call_ms": self.first_call_ms,
            "message": self.message,
        }
        if self.timing is not None:
            d.update(self.timing.as_dict())
        if self.roofline is not None:
            d.update(self.roofline)
        if self.peak_mb is not None:
            d["peak_mb"] = self.peak_mb
        return d


@dataclass
class Libraries:
    reference: Any
    frcnn: Any = None
    notes: List[str] = field(default_factory=list)


def load_libraries(need_frcnn: bool) -> Libraries:
    """``frcnn_fast`` (kernels) and its NumPy reference.

    Without a built extension, the reference is taken from ``reference/`` at the repository root
    so that ``--impls reference,torchvision`` still runs; asking for ``cpu``/``cuda`` then fails.
    """
    notes = []
    frcnn = None
    frcnn_error = None
    try:
        import frcnn_fast

        frcnn = frcnn_fast
    except Exception as exc:  # ImportError, or _C failing to load (an OSError/RuntimeError)
        frcnn_error = exc
    if frcnn is None and need_frcnn:
        raise RuntimeError(
            f"cannot import frcnn_fast ({type(frcnn_error).__name__}: {frcnn_error}). Build the extension "
            "first (make build / pip install -e .), or benchmark without it: --impls reference,torchvision"
        )
    reference = None
    if frcnn is not None:
        try:
            import frcnn_fast.reference as reference
        except ImportError as exc:
            notes.append(f"frcnn_fast.reference not importable ({exc})")
    if reference is None:
        if str(REPO_ROOT) not in sys.path:
            sys.path.append(str(REPO_ROOT))
        import reference  # noqa: F811  (repo-root copy of the NumPy reference)

        notes.append(
            f"using the NumPy reference from {REPO_ROOT / 'reference'} (frcnn_fast: {frcnn_error})"
        )
    return Libraries(reference=reference, frcnn=frcnn, notes=notes)


def to_numpy(out: Any) -> np.ndarray:
    if isinstance(out, torch.Tensor):
        out = out.detach().cpu()
        if out.dtype in (torch.float16, torch.bfloat16):
            out = out.float()
        return out.numpy()
    return np.asarray(out)


def representable(expected: np.ndarray, dtype: Optional[torch.dtype]) -> np.ndarray:
    """The reference answer as an output of ``dtype`` can hold it (float16 areas > 65504 are inf)."""
    if dtype in HALF_DTYPES and np.issubdtype(expected.dtype, np.floating):
        return torch.from_numpy(expected).to(dtype).double().numpy()
    return expected


def reference_arrays(tensors: Dict[str, torch.Tensor]) -> Dict[str, np.ndarray]:
    """The NumPy inputs of the reference: the benchmark tensors' exact values.

    float32/float64 stay as they are (what a NumPy user would pass); float16/bfloat16 values are
    handed over as float32 (exact), since NumPy has no bfloat16.
    """
    out = {}
    for k, t in tensors.items():
        if t.dtype in (torch.float16, torch.bfloat16):
            t = t.float()
        out[k] = np.ascontiguousarray(t.numpy())
    return out


def available_impls(op: OpBench, impls: Sequence[str]) -> List[str]:
    return [i for i in IMPLS if i in impls and op.factory(IMPL_SPECS[i][0]) is not None]


def run(
    ops: Sequence[OpBench],
    impls: Sequence[str],
    libs: Libraries,
    *,
    dtype: torch.dtype = torch.float32,
    threads: int = 2,
    min_run_time: float = 0.2,
    seed: int = 0,
    check_against_cpu: bool = False,
    time_it: bool = True,
    log: Callable[[str], None] = print,
    progress: bool = True,
    peaks: Optional[Dict[str, dict]] = None,
) -> List[Result]:
    """Every case of ``ops`` on every implementation in ``impls``. With ``progress``, a tqdm bar
    on stderr counts the measurements and ``log`` lines are written above it. ``peaks`` (per
    device type, from ``roofline.measure_peaks``) give the torch rows their roofline fraction;
    without them the rows still get their bytes, flops and achieved rates."""
    peaks = peaks or {}
    rtol, atol = TOLERANCES[dtype]
    total = sum(len(op.cases) * len(available_impls(op, impls)) for op in ops)
    done = 0
    results: List[Result] = []
    with tqdm(
        total=total, unit="run", disable=not progress, dynamic_ncols=True, leave=False
    ) as bar:
        if progress:
            log = bar.write

        for op in ops:
            op_impls = available_impls(op, impls)
            compare = op.compare or allclose_compare
            op_atol = atol * op.atol_scale
            for case in op.cases:
                bar.set_description_str(f"{op.name} {case.label}")
                arrays = op.make_inputs(case, rng_for(seed, op.name, case.label))
                cpu_tensors = {
                    k: torch.from_numpy(np.ascontiguousarray(v)).to(dtype)
                    for k, v in arrays.items()
                }
                ref_inputs = reference_arrays(cpu_tensors)
                inputs_on: Dict[str, Dict[str, torch.Tensor]] = {"cpu": cpu_tensors}

                # The expected output (and, when "reference" is benchmarked, its first call).
                ref_ctx = Context(
                    case=case, inputs=ref_inputs, lib=libs.reference, device=None, dtype=dtype
                )
                skip_reference = (
                    op.reference_max_size is not None and case.size > op.reference_max_size
                )
                case_impls = [i for i in op_impls if not (skip_reference and i == "reference")]
                if skip_reference:
                    total -= len(op_impls) - len(case_impls)
                    bar.total = total
                    bar.refresh()
                try:
                    if skip_reference:
                        trusted_inputs = {k: t.to(torch.float64) for k, t in cpu_tensors.items()}
                        ref_ctx = Context(
                            case=case,
                            inputs=trusted_inputs,
                            lib=libs.frcnn,
                            device=torch.device("cpu"),
                            dtype=torch.float64,
                        )
                        log(
                            f"{op.name} {case.label}: reference skipped above {op.reference_max_size:,} (checked against {op.torchvision_name or 'a trusted path'})"
                        )
                    ref_thunk = (op.trusted if skip_reference else op.reference)(ref_ctx)
                    ref_out, ref_first_s = call_once(ref_thunk, None)
                    expected = to_numpy(ref_out)
                except Exception as exc:  # nothing to check against: every impl of this case fails
                    log(traceback.format_exc(limit=-3).rstrip())
                    for impl in case_impls:
                        done += 1
                        res = Result(
                            op.name, op.family, case.label, case.size, op.size_unit, impl, "error"
                        )
                        res.message = f"the reference failed, nothing to check against: {type(exc).__name__}: {exc}"
                        log(_progress_line(done, total, res))
                        bar.update()
                        results.append(res)
                    continue
                work = None
                try:
                    work = op.work(case, arrays, expected) if op.work is not None else None
                except Exception:  # a broken work definition costs the fractions, not the run
                    log(traceback.format_exc(limit=-3).rstrip())
                    log(f"warning: {op.name} {case.label}: no roofline figures (work failed)")
                cpu_out: Optional[np.ndarray] = None
                if (
                    check_against_cpu
                    and "cpu" not in op_impls
                    and libs.frcnn is not None
                    and op.frcnn is not None
                ):
                    try:  # --check without timing "cpu": still compute its answer once
                        ctx = Context(
                            case=case,
                            inputs=cpu_tensors,
                            lib=libs.frcnn,
                            device=torch.device("cpu"),
                            dtype=dtype,
                        )
                        cpu_out = to_numpy(op.frcnn(ctx)())
                    except Exception:
                        log(traceback.format_exc(limit=-3).rstrip())

                for impl in case_impls:
                    kind, dev = IMPL_SPECS[impl]
                    res = Result(
                        op.name, op.family, case.label, case.size, op.size_unit, impl, "ok"
                    )
                    device = torch.device(dev) if dev else None
                    try:
                        if kind == "reference":
                            thunk, first_s = ref_thunk, ref_first_s
                        else:
                            if dev not in inputs_on:
                                inputs_on[dev] = {k: t.to(device) for k, t in cpu_tensors.items()}
                            lib = libs.frcnn if kind == "frcnn" else None
                            ctx = Context(
                                case=case,
                                inputs=inputs_on[dev],
                                lib=lib,
                                device=device,
                                dtype=dtype,
                            )
                            thunk = op.factory(kind)(ctx)
                            out, first_s = call_once(thunk, device)
                            actual = to_numpy(out)
                            out_dtype = out.dtype if isinstance(out, torch.Tensor) else None
                            problem = compare(
                                actual, representable(expected, out_dtype), rtol, op_atol
                            )
                            if problem is None and impl == "cpu":
                                cpu_out = actual
                            if (
                                problem is None
                                and check_against_cpu
                                and impl != "cpu"
                                and cpu_out is not None
                            ):
                                vs_cpu = compare(actual, cpu_out, rtol, op_atol)
                                if vs_cpu is not None:
                                    problem = f"differs from the cpu kernel: {vs_cpu}"
                            if problem is not None:
                                res.status, res.message = "mismatch", f"vs reference: {problem}"
                                if kind == "torchvision" and dtype in HALF_DTYPES:
                                    # torchvision computes in the half type itself: its answer is
                                    # worth timing (it is what users run), flagged, not a failure.
                                    res.status = "inexact"
                        res.first_call_ms = first_s * 1e3
                        if res.status in ("ok", "inexact") and time_it:
                            res.timing = measure(
                                thunk,
                                device,
                                threads,
                                min_run_time,
                                first_s,
                                label=f"{op.name} {case.label}",
                            )
                            if work is not None and kind != "reference":
                                res.roofline = row_figures(
                                    work,
                                    dtype.itemsize,
                                    res.timing.median_ms,
                                    peaks.get(dev),
                                    threads,
                                )
                        if res.status == "ok" and time_it and op.memory and kind != "reference":
                            try:  # a failed measurement costs the figure, not the row
                                res.peak_mb = op.memory(case, impl, threads)
                            except Exception:
                                log(traceback.format_exc(limit=-3).rstrip())
                    except Exception as exc:  # report, keep going, exit non-zero at the end
                        res.status = "error"
                        res.message = f"{type(exc).__name__}: {exc}"
                        log(traceback.format_exc(limit=-3).rstrip())
                    done += 1
                    log(_progress_line(done, total, res))
                    bar.update()
                    results.append(res)
                del inputs_on, cpu_tensors, ref_inputs, expected, ref_out, cpu_out
    return results


def _progress_line(done: int, total: int, res: Result) -> str:
    width = len(str(total))
    head = f"[{done:>{width}}/{total}] {res.op:<18} {res.case:<18} {res.impl:<16}"
    if res.status in FAILED:
        return f"{head} {res.status.upper()}: {res.message}"
    if res.timing is None:
        line = f"{head} output ok (first call {res.first_call_ms:.3f} ms)"
        return line + (f"  [INEXACT {res.message}]" if res.status == "inexact" else "")
    t = res.timing
    line = f"{head} {t.median_ms:>11.4f} ms  (iqr {t.iqr_ms:.4f} ms, {t.runs} runs, {t.method})"
    if res.roofline and res.roofline.get("roofline_fraction") is not None:
        line += f"  {fmt_fraction(res.roofline)} of roofline"
    if res.peak_mb is not None:
        line += f"  peak +{res.peak_mb:,.1f} MB"
    if res.status == "inexact":
        line += f"  [INEXACT {res.message}]"
    return line
