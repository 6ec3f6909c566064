"""What a benchmark is: an op, its cases (sizes), and one callable per implementation kind.

An op module (``benchmarks/ops/<family>.py``) builds :class:`OpBench` objects and passes them to
:func:`register`. The runner turns every op x case x implementation into a zero-argument
callable ("thunk") built *outside* the timed region, checks its output once against the NumPy
reference, then times it.

Implementation kinds and the names they are reported under:

============  ======================================  =====================================
kind          callable receives                      reported as
============  ======================================  =====================================
reference     NumPy arrays (``frcnn_fast.reference``)  ``reference``
frcnn         torch tensors (``frcnn_fast.<op>``)      ``cpu`` / ``cuda`` (by tensor device)
torchvision   torch tensors (torchvision equivalent)   ``torchvision-cpu`` / ``torchvision-cuda``
============  ======================================  =====================================
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from .roofline import Work

Thunk = Callable[[], Any]

# Canonical implementation names, in table/plot order.
IMPLS = ("reference", "cpu", "torchvision-cpu", "cuda", "torchvision-cuda")
# impl name -> (kind, device type); device None means NumPy.
IMPL_SPECS = {
    "reference": ("reference", None),
    "cpu": ("frcnn", "cpu"),
    "cuda": ("frcnn", "cuda"),
    "torchvision-cpu": ("torchvision", "cpu"),
    "torchvision-cuda": ("torchvision", "cuda"),
}
# (ours, theirs) pairs reported as speed-ups (theirs / ours).
SPEEDUPS = (("cpu", "torchvision-cpu"), ("cuda", "torchvision-cuda"))


@dataclass
class Case:
    """One size of one op.

    ``label`` is what the table shows (``"20,000x100"``), ``size`` the number plotted on the
    x axis (pairs, boxes or anchors: see :attr:`OpBench.size_unit`), ``params`` whatever the
    op's input maker and thunks need (shapes, weights, image size, ...). Cases of one op that
    differ in something other than size (``"NHWC"``) name it in ``series``: the plot draws one
    line per implementation and series.
    """

    label: str
    size: int
    params: Dict[str, Any] = field(default_factory=dict)
    series: str = ""


@dataclass
class Context:
    """Everything a thunk factory may use. Built once per (case, implementation)."""

    case: Case
    inputs: Dict[str, Any]  # NumPy arrays for the reference, tensors for torch impls
    lib: Any = None  # frcnn_fast.reference module for the reference, frcnn_fast for frcnn
    device: Any = None  # torch.device for torch impls, None for the reference
    dtype: Any = None  # torch dtype of the tensors (also set for the reference run)

    @property
    def params(self) -> Dict[str, Any]:
        return self.case.params


@dataclass
class OpBench:
    """An op to benchmark.

    * ``make_inputs(case, rng)`` returns a dict of float64 NumPy arrays (the master data; the
      runner converts them once to the benchmark dtype / device, outside any timed region).
    * ``reference``, ``frcnn``, ``torchvision``: ``factory(ctx) -> thunk``; ``None`` where no
      such implementation exists (e.g. no torchvision twin).
    * ``compare(actual, expected, rtol, atol)`` returns ``None`` when outputs agree or a short
      description of the disagreement; the default is an ``allclose`` test with
      ``atol * atol_scale`` (``atol_scale`` ~ the magnitude of the op's outputs).
    """

    name: str
    family: str
    size_unit: str
    cases: Sequence[Case]
    make_inputs: Callable[[Case, np.random.Generator], Dict[str, np.ndarray]]
    reference: Optional[Callable[[Context], Thunk]]
    frcnn: Optional[Callable[[Context], Thunk]]
    torchvision: Optional[Callable[[Context], Thunk]] = None
    torchvision_name: str = ""  # e.g. "torchvision.ops.box_iou", for the report
    atol_scale: float = 1.0
    compare: Optional[Callable[[np.ndarray, np.ndarray, float, float], Optional[str]]] = None
    description: str = ""
    order: int = 100
    # Above this case size the NumPy reference is not run (too slow: NMS's greedy loop is
    # O(N * kept)); the outputs are then checked against ``trusted(ctx)`` instead, a factory
    # receiving float64 CPU tensors (e.g. torchvision on inputs where it must agree).
    reference_max_size: Optional[int] = None
    trusted: Optional[Callable[[Context], Thunk]] = None
    # ``work(case, inputs, expected)``: the case's compulsory bytes and flops (see roofline.py),
    # from its parameters, its float64 input arrays and the checked output (NMS keeps a number
    # of boxes only the output tells). None: the rows show no roofline fraction.
    work: Optional[Callable[[Case, Dict[str, np.ndarray], np.ndarray], Work]] = None
    # ``memory(case, impl, threads)``: the peak memory in MB of one call above its inputs,
    # measured where it means something (the runner's own peak is that of all it ran before:
    # match.py measures in a fresh process). None: no peak-memory column.
    memory: Optional[Callable[[Case, str, int], float]] = None

    def factory(self, kind: str) -> Optional[Callable[[Context], Thunk]]:
        return {"reference": self.reference, "frcnn": self.frcnn, "torchvision": self.torchvision}[
            kind
        ]


_REGISTRY: Dict[str, OpBench] = {}


def register(op: OpBench) -> OpBench:
    if op.name in _REGISTRY:
        raise ValueError(f"benchmark op {op.name!r} registered twice")
    _REGISTRY[op.name] = op
    return op


def register_op(name: str, ours: Callable[[Context], Thunk], **fields) -> OpBench:
    """``register(OpBench(...))`` for an op whose reference and kernel are called alike:
    ``ours(ctx)`` serves both (``ctx.lib`` is ``frcnn_fast.reference`` or ``frcnn_fast``).
    ``torchvision_name`` defaults to the path of a :func:`torchvision_call`."""
    fields.setdefault("torchvision_name", getattr(fields.get("torchvision"), "path", ""))
    return register(OpBench(name=name, reference=ours, frcnn=ours, **fields))


def lib_call(fn: str, inputs: Sequence[str], *extra: Any) -> Callable[[Context], Thunk]:
    """Thunk factory of ``ctx.lib.<fn>(*inputs, *extra)``: the reference's or the kernel's."""
    return lambda ctx: partial(getattr(ctx.lib, fn), *(ctx.inputs[k] for k in inputs), *extra)


def torchvision_call(path: str, inputs: Sequence[str], *extra: Any) -> Callable[[Context], Thunk]:
    """Thunk factory of ``<path>(*inputs, *extra)``, ``path`` a dotted name such as
    ``torchvision.ops.box_iou`` (imported when the factory runs, so that listing the ops does
    not import torchvision)."""

    def factory(ctx: Context) -> Thunk:
        module, fn = path.rsplit(".", 1)
        target = getattr(importlib.import_module(module), fn)
        return partial(target, *(ctx.inputs[k] for k in inputs), *extra)

    factory.path = path
    return factory


def sized_cases(
    sizes: Sequence[int], suffix: str = "", series: str = "", **params: Any
) -> List[Case]:
    """One case per size ``n`` (``params["n"]``), labelled ``"20,000"`` + ``suffix``."""
    return [Case(fmt_count(n) + suffix, n, dict(params, n=n), series) for n in sizes]


def all_ops() -> List[OpBench]:
    from . import ops  # noqa: F401  (imports every ops/<family>.py, which registers)

    return sorted(_REGISTRY.values(), key=lambda o: (o.order, o.name))


def allclose_compare(
    actual: np.ndarray, expected: np.ndarray, rtol: float, atol: float
) -> Optional[str]:
    """Default comparison: same shape, ``|a - e| <= atol + rtol * |e|`` everywhere (NaNs equal)."""
    a, e = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape or a.size == 0:
        return _shape_problem(a, e)
    ok = np.isclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
    if ok.all():
        return None
    bad = np.flatnonzero(~ok.reshape(-1))
    with np.errstate(invalid="ignore"):
        err = np.abs(a - e).reshape(-1)
    worst = int(bad[np.nanargmax(err[bad])]) if np.isfinite(err[bad]).any() else int(bad[0])
    idx = np.unravel_index(worst, a.shape)
    return (
        f"{bad.size}/{a.size} elements differ (rtol={rtol:g}, atol={atol:g}); worst at {tuple(int(i) for i in idx)}: "
        f"got {float(a.reshape(-1)[worst]):.9g}, expected {float(e.reshape(-1)[worst]):.9g}"
    )


def exact_compare(
    actual: np.ndarray, expected: np.ndarray, rtol: float, atol: float
) -> Optional[str]:
    """For integer results (indices): identical shape and values."""
    a, e = np.asarray(actual, dtype=np.int64), np.asarray(expected, dtype=np.int64)
    if a.shape != e.shape or np.array_equal(a, e):
        return _shape_problem(a, e)
    bad = np.flatnonzero(a != e)
    return f"{bad.size}/{a.size} indices differ; first at {int(bad[0])}: got {a[bad[0]]}, expected {e[bad[0]]}"


def _shape_problem(actual: np.ndarray, expected: np.ndarray) -> Optional[str]:
    if actual.shape != expected.shape:
        return f"shape {actual.shape} != expected {expected.shape}"
    return None


def fmt_count(n: float) -> str:
    """20000 -> '20,000'."""
    if float(n).is_integer():
        return f"{int(n):,}"
    return f"{n:g}"
