"""Shared helpers of the test suite: devices, dtypes and tolerances, tensor <-> NumPy,
non-contiguous layouts, hypothesis strategies for boxes, and a comparison that explains itself.

Conventions
-----------
* The reference (NumPy, float64) always receives the *same* values the kernel sees: the inputs
  are first rounded to the tested dtype, then read back as float64 (``to_np``).
* Kernels compute float16/bfloat16 in float32 and round the result once, so the error of a
  kernel is (float32 or float64 arithmetic error, proportional to the magnitudes involved) +
  (one rounding of the output to the dtype, proportional to the output). ``RTOL``/``ATOL`` cover
  the second part; ``compute_eps(dtype) * magnitude`` the first.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import strategies as st

# --------------------------------------------------------------------------------------------
# devices and dtypes
# --------------------------------------------------------------------------------------------
HAS_CUDA = torch.cuda.is_available()

CUDA_PARAM = pytest.param(
    "cuda",
    marks=[pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="no GPU")],
    id="cuda",
)
# The CUDA kernels, emulated on the CPU (tests/cuda_emu): the tensors are CPU tensors, and the
# conftest routes every torch.ops.frcnn_fast call of the test to the emulated CUDA kernel. Never
# skipped: this is how the CUDA code runs in every `make test`.
CUDA_EMU_PARAM = pytest.param(
    "cpu", marks=[pytest.mark.cuda_emu, pytest.mark.on_cuda_emu], id="cuda_emu"
)
# Where the kernels run: CPU kernels, emulated CUDA kernels, real CUDA kernels.
DEVICES = [pytest.param("cpu", id="cpu"), CUDA_EMU_PARAM, CUDA_PARAM]
# The CUDA backends whose results the CUDA-vs-CPU tests compare with the CPU kernels': the
# backend name picks the tensors' device ("cuda_emu": CPU tensors, emulated kernels).
CUDA_BACKENDS = [pytest.param("cuda_emu", marks=[pytest.mark.cuda_emu], id="cuda_emu"), CUDA_PARAM]
# Real devices only, for tests of the op registrations (opcheck, torch.compile) rather than of
# the kernels' results.
REAL_DEVICES = [pytest.param("cpu", id="cpu"), CUDA_PARAM]

ALL_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
FULL_DTYPES = (torch.float32, torch.float64)
HALF_DTYPES = (torch.float16, torch.bfloat16)


# Ops with a CPU kernel only, and why: the rules that every op has a CUDA kernel (emulated, and
# in a CUDA build) and that opcheck runs every op on every real device make these exceptions.
CPU_ONLY_OPS = {
    "_roi_pool_backward_recompute": "the CUDA backward reads the argmax its forward stored",
}


def registered_ops():
    """Every op the extension registers in the ``frcnn_fast`` namespace, sorted: tests that
    must cover all ops take the list from here, so a new op cannot be forgotten."""
    prefix = "frcnn_fast::"
    names = torch._C._dispatch_get_all_op_names()
    return sorted(n[len(prefix) :] for n in names if n.startswith(prefix))


def dtype_id(dtype):
    return str(dtype).replace("torch.", "")


DTYPES = [pytest.param(d, id=dtype_id(d)) for d in ALL_DTYPES]
FULL = [pytest.param(d, id=dtype_id(d)) for d in FULL_DTYPES]

# relative tolerance of a result (covers the final rounding to the dtype for half types)
RTOL = {
    torch.float64: 1e-9,
    torch.float32: 1e-5,
    torch.float16: 2e-3,
    torch.bfloat16: 1.6e-2,
}
# absolute floor for unit-scale results (IoU in [0, 1], deltas, ...)
ATOL = {
    torch.float64: 1e-12,
    torch.float32: 1e-6,
    torch.float16: 1e-3,
    torch.bfloat16: 8e-3,
}


def eps(dtype):
    return torch.finfo(dtype).eps


def compute_eps(dtype):
    """Machine epsilon of the arithmetic the kernels use for ``dtype`` (half types -> float32)."""
    return eps(torch.float64) if dtype == torch.float64 else eps(torch.float32)


# --------------------------------------------------------------------------------------------
# tensor <-> numpy
# --------------------------------------------------------------------------------------------
LAYOUTS = ("contiguous", "column_slice", "stride2", "transposed")


def as_layout(t, layout):
    """The same values as ``t`` in a different memory layout (the padding is NaN, so a kernel
    that ignores strides reads NaN and fails loudly)."""
    if layout == "contiguous":
        out = t.contiguous()
    elif layout == "column_slice":
        # a column slice of a wider tensor: last-dim stride 1, row stride last+3
        last = t.shape[-1]
        big = torch.full((*t.shape[:-1], last + 3), float("nan"), dtype=t.dtype, device=t.device)
        big[..., 1 : 1 + last] = t
        out = big[..., 1 : 1 + last]
    elif layout == "stride2":
        big = torch.full(
            (2 * t.shape[0], *t.shape[1:]), float("nan"), dtype=t.dtype, device=t.device
        )
        big[::2] = t
        out = big[::2]
    elif layout == "transposed":
        # transposed-then-transposed copy: same shape, column-major storage
        out = t.transpose(0, -1).contiguous().transpose(0, -1)
    else:
        raise AssertionError(f"unknown layout {layout}")
    assert out.shape == t.shape
    # NaN-safe equality (NMS inputs carry NaN on purpose)
    torch.testing.assert_close(out, t, rtol=0, atol=0, equal_nan=True)
    if (
        layout != "contiguous"
        and t.numel() > 0
        and t.dim() >= 2
        and t.shape[0] > 1
        and t.shape[-1] > 1
    ):
        assert not out.is_contiguous(), layout
    return out


def to_tensor(arr, dtype, device="cpu", layout="contiguous"):
    """float64 array -> tensor of ``dtype`` on ``device`` (values rounded to the dtype)."""
    t = torch.as_tensor(np.asarray(arr, dtype=np.float64)).to(dtype=dtype, device=device)
    return as_layout(t, layout)


def to_np(t):
    """tensor -> NumPy; floating tensors (bfloat16 included) come back as float64 exactly."""
    t = t.detach().cpu()
    if t.is_floating_point():
        # bfloat16/float16 -> float32 is exact, float32 -> float64 is exact
        return (
            t.to(torch.float32).numpy().astype(np.float64)
            if t.dtype != torch.float64
            else t.numpy()
        )
    return t.numpy()


def rounded(arr, dtype):
    """``arr`` rounded to ``dtype`` and read back as float64."""
    return to_np(to_tensor(arr, dtype))


# --------------------------------------------------------------------------------------------
# comparison
# --------------------------------------------------------------------------------------------
def _fmt(v):
    a = np.asarray(v)
    if a.size > 64:
        return f"array(shape={a.shape})"
    return np.array2string(a, precision=10, max_line_width=200)


def check_close(actual, expected, rtol, atol, **context):
    """Assert ``|actual - expected| <= atol + rtol * |expected|`` elementwise (``atol`` may be an
    array broadcastable to the result); NaN/inf must be at the same places. ``context`` (the
    inputs) is printed on failure."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"shape {actual.shape} != expected {expected.shape}"
    ctx = "".join(f"\n  {k} = {_fmt(v)}" for k, v in context.items())
    nan_a, nan_e = np.isnan(actual), np.isnan(expected)
    assert np.array_equal(nan_a, nan_e), (
        f"NaN mismatch: actual NaN at {np.argwhere(nan_a).tolist()}, expected NaN at {np.argwhere(nan_e).tolist()}{ctx}"
    )
    inf_a, inf_e = np.isinf(actual), np.isinf(expected)
    assert np.array_equal(inf_a, inf_e) and np.array_equal(actual[inf_a], expected[inf_e]), (
        f"inf mismatch: actual {actual[inf_a | inf_e]}, expected {expected[inf_a | inf_e]}{ctx}"
    )
    fin = np.isfinite(expected)
    tol = np.broadcast_to(np.asarray(atol, dtype=np.float64), expected.shape) + rtol * np.abs(
        expected
    )
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.where(fin, np.abs(actual - expected), 0.0)
    bad = err > tol
    if bad.any():
        idx = np.argwhere(bad)
        worst = tuple(
            np.unravel_index(np.argmax(np.where(bad, err / np.maximum(tol, 1e-300), 0)), err.shape)
        )
        raise AssertionError(
            f"{int(bad.sum())} of {expected.size} elements differ; worst at {worst}: "
            f"actual {actual[worst]!r}, expected {expected[worst]!r}, |err| {err[worst]:.3g} > tol {tol[worst]:.3g}"
            f"\n  first bad indices: {idx[:8].tolist()}"
            f"\n  actual = {_fmt(actual)}\n  expected = {_fmt(expected)}{ctx}"
        )


def check_result_tensor(out, dtype, device, shape):
    """Output dtype equals the input dtype, lives on the input device, has the expected shape."""
    assert out.dtype == dtype, f"result dtype {out.dtype} != input dtype {dtype}"
    assert out.device.type == torch.device(device).type, (
        f"result on {out.device}, input on {device}"
    )
    assert tuple(out.shape) == tuple(shape), f"result shape {tuple(out.shape)} != {tuple(shape)}"


# --------------------------------------------------------------------------------------------
# hypothesis strategies
# --------------------------------------------------------------------------------------------
GRID = 8  # grid coordinates are multiples of 1/8: exact in every dtype's arithmetic we use


def coords(lim, grid=False):
    """Coordinates in ``[-lim, lim]``: multiples of 1/8, or (grid=False) also 3-decimal floats."""
    on_grid = st.integers(-GRID * int(lim), GRID * int(lim)).map(lambda k: k / GRID)
    if grid:
        return on_grid
    free = st.floats(-lim, lim, allow_nan=False, allow_infinity=False, allow_subnormal=False).map(
        lambda v: round(v, 3)
    )
    return st.one_of(on_grid, free)


def sizes(lo, hi, grid=False):
    on_grid = st.integers(max(1, math.ceil(GRID * lo)), GRID * int(hi)).map(lambda k: k / GRID)
    if grid:
        return on_grid
    free = st.floats(max(lo, 1e-3), hi, allow_nan=False, allow_infinity=False).map(
        lambda v: max(round(v, 3), max(lo, 1e-3))
    )
    return st.one_of(on_grid, free)


DEGENERATE_KINDS = ("zero_w", "zero_h", "point", "inverted_x", "inverted_y", "inverted_xy")


@st.composite
def box_arrays(
    draw,
    min_n=0,
    max_n=20,
    lim=1000,
    grid=False,
    degenerate=True,
    min_size=0.0,
    max_size=None,
    n=None,
):
    """``[N, 4]`` float64 xyxy boxes: random, and (degenerate=True) zero-area, point, inverted
    and duplicated boxes. Without ``degenerate`` every box has w, h in ``[min_size, max_size]``."""
    if n is None:
        n = draw(st.integers(min_n, max_n))
    max_size = lim if max_size is None else max_size
    kinds = ("normal",) * 5 + DEGENERATE_KINDS if degenerate else ("normal",)
    c, s = coords(lim, grid), sizes(min_size, max_size, grid)
    rows = []
    for _ in range(n):
        kind = draw(st.sampled_from(kinds))
        x1, y1, w, h = draw(c), draw(c), draw(s), draw(s)
        if kind in ("zero_w", "point"):
            w = 0.0
        if kind in ("zero_h", "point"):
            h = 0.0
        if kind in ("inverted_x", "inverted_xy"):
            w = -w
        if kind in ("inverted_y", "inverted_xy"):
            h = -h
        rows.append([x1, y1, x1 + w, y1 + h])
    if n > 1 and degenerate:
        for _ in range(draw(st.integers(0, min(3, n - 1)))):
            src, dst = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
            rows[dst] = list(rows[src])
    return np.asarray(rows, dtype=np.float64).reshape(n, 4)


@st.composite
def box_pairs(draw, min_n=0, max_n=16, **kw):
    """Two box arrays; sometimes the second shares rows with the first (IoU exactly 1)."""
    a = draw(box_arrays(min_n=min_n, max_n=max_n, **kw))
    b = draw(box_arrays(min_n=min_n, max_n=max_n, **kw))
    if len(a) and draw(st.booleans()):
        take = draw(st.lists(st.integers(0, len(a) - 1), max_size=4))
        b = np.concatenate([b, a[take]], axis=0)
    return a, b


def random_boxes(rng, n, lim=1000.0, degenerate_frac=0.1):
    """Large random box sets (numpy generator) for the size/threading tests."""
    xy = rng.uniform(-lim, lim, size=(n, 2))
    wh = rng.uniform(0, lim / 2, size=(n, 2))
    k = int(n * degenerate_frac)
    if k:
        wh[: k // 2, 0] = 0.0
        wh[k // 2 : k, 1] = -wh[k // 2 : k, 1]
    boxes = np.concatenate([xy, xy + wh], axis=1)
    return np.round(boxes * GRID) / GRID


def coding_limits(dtype):
    """(coordinate limit, minimum width/height) for encode/decode inputs of ``dtype``: widths stay
    >= ~1 px even after the coordinates are rounded to the dtype."""
    lim = 1000
    min_size = max(1.0, 4 * eps(dtype) * 2 * lim)
    return lim, min_size


WEIGHTS = st.one_of(
    st.sampled_from([(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0), (2.0, 0.5, 1.5, 3.0)]),
    st.tuples(*[st.floats(0.25, 20.0).map(lambda v: round(v, 2))] * 4),
)


# --------------------------------------------------------------------------------------------
# error models of the box coding (used by the coding and CUDA-vs-CPU tests)
# --------------------------------------------------------------------------------------------
# safety factors on the arithmetic error bounds (a handful of roundings, each <= eps * magnitude;
# decode also goes through exp(), whose input carries an error of eps * |dw|)
K = 16
K_DECODE = 32


def box_sizes(b):
    """(width, height) of xyxy boxes, unclamped."""
    return b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]


def encode_atol(ref, tgt, weights, dtype):
    """Arithmetic error of encode: centre differences cancel, so dx's error scales with
    |coordinates| / reference width; dw's with the weight only (log of a ratio)."""
    wx, wy, ww, wh = weights
    rw, rh = box_sizes(ref)
    mx = (np.abs(ref[..., 0::2]).sum(-1) + np.abs(tgt[..., 0::2]).sum(-1)) / rw
    my = (np.abs(ref[..., 1::2]).sum(-1) + np.abs(tgt[..., 1::2]).sum(-1)) / rh
    mag = np.stack([wx * mx, wy * my, np.full_like(mx, 4 * ww), np.full_like(my, 4 * wh)], axis=-1)
    return K * compute_eps(dtype) * mag + ATOL[dtype]


def decode_atol(deltas, ref, expected, dtype):
    """Arithmetic error of decode: x1 = (dx*rw + rcx) - 0.5*w cancels, so the error scales with
    |reference coordinates| + |output coordinates|."""
    n = ref.shape[0]
    if n == 0:
        return ATOL[dtype]
    mref = np.abs(ref).max(-1, keepdims=True)
    mout = np.abs(expected).reshape(n, -1, 4).max(-1).repeat(4, axis=1)
    return K_DECODE * compute_eps(dtype) * (mref + mout) + ATOL[dtype]


# --------------------------------------------------------------------------------------------
# golden anchors
# --------------------------------------------------------------------------------------------
SEED_SIZES = (128, 256, 512)  # stride 16 x scales (8, 16, 32)
SEED_RATIOS = (0.5, 1.0, 2.0)


def seed_nine(centre=8.0):
    """The nine anchors of the tutorial RPN (docs/CONVENTIONS.md, golden vectors), computed from
    the definition: h = s*sqrt(r), w = s/sqrt(r), ratio-major, centred on ``centre``."""
    rows = []
    for r in SEED_RATIOS:
        for s in SEED_SIZES:
            h, w = s * math.sqrt(r), s / math.sqrt(r)
            rows.append([centre - w / 2, centre - h / 2, centre + w / 2, centre + h / 2])
    return np.asarray(rows)


# --------------------------------------------------------------------------------------------
# tie-heavy inputs: where the order of equal values decides the result
# --------------------------------------------------------------------------------------------
# Random floats never tie, but real inputs do: a detector's feature maps are ReLU outputs full of
# exact zeros, quantised models have a few levels, proposals repeat and share scores. Every value
# here is a multiple of 1/4 of small magnitude, exact in every dtype (bfloat16 included).
TIE_MAP_KINDS = ("relu", "sparse_relu", "quantised", "plateaus", "constant", "signed_zeros")


@st.composite
def tie_maps(draw, max_n=2, max_c=3, max_hw=12, kinds=TIE_MAP_KINDS):
    """``[N, C, H, W]`` float64 feature maps in which most bins hold equal maxima:
    ``relu`` (about half exact zeros), ``sparse_relu`` (about 85% zeros), ``quantised`` (5
    levels), ``plateaus`` (2x2 or 3x3 blocks of one quantised value), ``constant`` and
    ``signed_zeros`` (0.0 and -0.0, equal but with different bits, and -1)."""
    shape = (
        draw(st.integers(1, max_n)),
        draw(st.integers(1, max_c)),
        draw(st.integers(1, max_hw)),
        draw(st.integers(1, max_hw)),
    )
    kind = draw(st.sampled_from(kinds))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "relu":
        x = np.maximum(np.round(rng.normal(size=shape) * 4) / 4, 0.0)
    elif kind == "sparse_relu":
        x = np.maximum(np.round((rng.normal(size=shape) - 1.0) * 4) / 4, 0.0)
    elif kind == "quantised":
        x = rng.integers(-2, 3, size=shape) / 4.0
    elif kind == "plateaus":
        k = draw(st.sampled_from([2, 3]))
        n, c, h, w = shape
        small = rng.integers(-2, 3, size=(n, c, -(-h // k), -(-w // k))) / 4.0
        x = np.kron(small, np.ones((1, 1, k, k)))[:, :, :h, :w]
    elif kind == "constant":
        x = np.full(shape, draw(st.sampled_from([0.0, -0.0, -1.5, 2.25])))
    else:
        x = rng.choice(np.array([0.0, -0.0, -1.0]), size=shape)
    return np.ascontiguousarray(x)


@st.composite
def tie_rois(draw, batch, height, width, scale, max_k=8):
    """``[K, 5]`` RoIs ``(batch_index, x1, y1, x2, y2)`` on whole cells (so bins cover several
    cells of a plateau), the whole map, and duplicated rows (the same bins pooled twice: their
    gradients meet in the same cells)."""
    k = draw(st.integers(1, max_k))
    rows = []
    for _ in range(k):
        kind = draw(st.sampled_from(["cells", "cells", "whole", "half_cells"]))
        if kind == "whole":
            x1, y1, x2, y2 = 0.0, 0.0, (width - 1) / scale, (height - 1) / scale
        else:
            step = 1.0 if kind == "cells" else 0.5
            cx = draw(st.integers(-1, int((width + 1) / step)))
            cy = draw(st.integers(-1, int((height + 1) / step)))
            cw = draw(st.integers(0, int(width / step)))
            ch = draw(st.integers(0, int(height / step)))
            x1, y1 = cx * step / scale, cy * step / scale
            x2, y2 = x1 + cw * step / scale, y1 + ch * step / scale
        rows.append([draw(st.integers(0, batch - 1)), x1, y1, x2, y2])
    rows = np.asarray(rows, dtype=np.float64).reshape(k, 5)
    if k > 1:
        for _ in range(draw(st.integers(0, k - 1))):
            rows[draw(st.integers(0, k - 1))] = rows[draw(st.integers(0, k - 1))]
    return rows


def integer_grads(rng, shape):
    """Gradients in {-2, ..., 2}: every sum of them is exact in every dtype, whatever the order of
    the additions, so backward results can be compared bit for bit across implementations."""
    return rng.integers(-2, 3, size=shape).astype(np.float64)


@st.composite
def tie_scores(draw, n):
    """Scores with ties only: all equal, two levels, or a few levels, with 0.0 and -0.0 mixed
    (equal, so input order decides)."""
    kind = draw(st.sampled_from(["equal", "two", "few", "signed_zeros"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "equal":
        return np.full(n, 0.75)
    if kind == "two":
        return rng.choice(np.array([0.25, 0.5]), size=n)
    if kind == "few":
        return rng.integers(0, 4, size=n) / 4.0
    return rng.choice(np.array([0.0, -0.0, 0.5]), size=n)


@st.composite
def lattice_boxes(draw, min_n=1, max_n=200):
    """Equal boxes on a lattice (every horizontal or vertical neighbour pair has the same IoU,
    exactly 0.5 or 1/3 for some sizes, which are also common thresholds), some repeated (IoU 1),
    in a random order."""
    n = draw(st.integers(min_n, max_n))
    step = draw(st.sampled_from([1.0, 2.0, 4.0]))
    w = step * draw(st.sampled_from([2, 3, 4]))  # neighbour IoU (w - step) / (w + step)
    h = step * draw(st.sampled_from([1, 3, 8]))
    cols = draw(st.integers(1, 16))
    k = np.arange(n)
    x1, y1 = (k % cols) * step, (k // cols) * step
    boxes = np.stack([x1, y1, x1 + w, y1 + h], axis=1).astype(np.float64)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if n > 1:
        dup = rng.integers(0, n, size=draw(st.integers(0, n // 2)))
        boxes[rng.permutation(n)[: len(dup)]] = boxes[dup]
    return boxes[rng.permutation(n)]
