"""Hypothesis strategies and tolerances shared by the RoI pooling / RoIAlign tests.

Feature maps stay small (a few channels, <= 12x12) so that every test is cheap enough to run
once per device param. Coordinates are multiples of 1/8 or 3-decimal floats; spatial scales
are powers of two or arbitrary decimals; RoIs include degenerate (zero-size, inverted),
sub-pixel and out-of-image ones.
"""

import contextlib

import numpy as np
import torch
from helpers import RTOL, check_close, check_result_tensor, compute_eps, coords, to_np
from hypothesis import strategies as st

SCALES = st.one_of(
    st.sampled_from([1.0, 0.5, 0.25, 0.125, 2.0]), st.floats(0.05, 3.0).map(lambda v: round(v, 3))
)


@st.composite
def roi_sets(draw, batch, height, width, scale, max_k=8):
    """``[K, 5]`` float64 rows ``(batch_index, x1, y1, x2, y2)`` in image coordinates: inside,
    straddling and outside the map, sub-pixel, zero-size and inverted."""
    k = draw(st.integers(0, max_k))
    lim_x, lim_y = (width + 2) / scale, (height + 2) / scale
    rows = []
    for _ in range(k):
        kind = draw(st.sampled_from(["normal"] * 4 + ["subpixel", "point", "inverted", "outside"]))
        x1 = draw(coords(lim_x))
        y1 = draw(coords(lim_y))
        w = draw(st.floats(0, lim_x).map(lambda v: round(v, 3)))
        h = draw(st.floats(0, lim_y).map(lambda v: round(v, 3)))
        if kind == "subpixel":
            w, h = w / 16, h / 16
        elif kind == "point":
            w = h = 0.0
        elif kind == "inverted":
            w, h = -w, -h
        elif kind == "outside":
            x1 += 2 * lim_x
        rows.append([draw(st.integers(0, batch - 1)), x1, y1, x1 + w, y1 + h])
    return np.asarray(rows, dtype=np.float64).reshape(k, 5)


@st.composite
def feature_maps(draw, max_c=3, max_hw=12):
    n = draw(st.integers(1, 2))
    c = draw(st.integers(1, max_c))
    h = draw(st.integers(1, max_hw))
    w = draw(st.integers(1, max_hw))
    seed = draw(st.integers(0, 2**31 - 1))
    return np.random.default_rng(seed).normal(size=(n, c, h, w))


def draw_case(data):
    """A feature map, a spatial scale, RoIs on it and an output size: what both RoI ops take."""
    x = data.draw(feature_maps(), label="x")
    scale = data.draw(SCALES, label="spatial_scale")
    rois = data.draw(roi_sets(x.shape[0], x.shape[2], x.shape[3], scale), label="rois")
    pooled = data.draw(st.tuples(st.integers(1, 4), st.integers(1, 4)), label="output_size")
    return x, scale, rois, pooled


def check_torchvision(ours, theirs, x, rois, dtype, device, tol, grad_tol):
    """``ours`` and ``theirs`` (each ``f(input, boxes)``) give the same output within ``tol`` and
    the same input gradient, for one random output gradient, within ``grad_tol``."""
    inp = torch.as_tensor(x).to(dtype=dtype, device=device)
    boxes = torch.as_tensor(rois).to(dtype=dtype, device=device)
    a, b = inp.clone().requires_grad_(), inp.clone().requires_grad_()
    out_a, out_b = ours(a, boxes), theirs(b, boxes)
    check_close(to_np(out_a), to_np(out_b), 0, tol)
    if len(rois):
        g = torch.randn_like(out_a)
        (ga,) = torch.autograd.grad(out_a, a, g)
        (gb,) = torch.autograd.grad(out_b, b, g)
        check_close(to_np(ga), to_np(gb), 0, grad_tol)


def check_grad(out, inp, reference_backward, rois, pooled, eps_factor):
    """Backpropagate a fixed random gradient through ``out`` to ``inp`` and compare with
    ``reference_backward(grad as NumPy)``: each input cell sums at most K * bins terms of size
    <= max|grad|, each rounded once, so the error allowed is ``eps_factor`` eps per such term."""
    dtype, device = inp.dtype, inp.device
    grad = torch.as_tensor(np.random.default_rng(len(rois)).normal(size=out.shape))
    grad = grad.to(dtype=dtype, device=device)
    (gi,) = torch.autograd.grad(out, inp, grad)
    check_result_tensor(gi, dtype, device, inp.shape)
    bound = max(1, len(rois) * pooled[0] * pooled[1]) * (to_np(grad.abs()).max(initial=0))
    atol = eps_factor * compute_eps(dtype) * bound + 1e-12
    check_close(to_np(gi), reference_backward(to_np(grad)), RTOL[dtype], atol, rois=rois)


def make_input(arr, dtype, device, layout):
    """A feature map tensor in ``layout``: contiguous, channels_last or a non-contiguous view."""
    t = torch.as_tensor(arr).to(dtype=dtype, device=device)
    if layout == "channels_last":
        return t.contiguous(memory_format=torch.channels_last)
    if layout == "strided":
        big = torch.full(
            (t.shape[0], t.shape[1] * 2, t.shape[2], t.shape[3] + 1),
            float("nan"),
            dtype=dtype,
            device=device,
        )
        big[:, ::2, :, 1:] = t
        return big[:, ::2, :, 1:]
    return t.contiguous()


LAYOUTS = ("contiguous", "channels_last", "strided")


def geometry(dtype):
    return np.float64 if dtype == torch.float64 else np.float32


def value_tol(dtype, magnitude):
    """(rtol, atol array) for outputs whose terms have absolute size ``magnitude``: arithmetic
    error of the accumulation type plus one rounding of the result to ``dtype``."""
    return RTOL[dtype], 64 * compute_eps(dtype) * magnitude + RTOL[dtype] * 1e-3


def boxes_arg(rois, fmt, batch, dtype, device):
    """``rois`` as the kernel takes it: a ``[K, 5]`` tensor or a per-image list of ``[Ki, 4]``
    (row order then changes to image-major: returns the permutation too)."""
    t = torch.as_tensor(rois).to(dtype=dtype, device=device)
    if fmt == "tensor":
        return t, np.arange(len(rois))
    idx = rois[:, 0].astype(np.int64)
    order = (
        np.concatenate([np.flatnonzero(idx == i) for i in range(batch)])
        if len(rois)
        else np.zeros(0, np.int64)
    )
    return [
        t[torch.as_tensor(np.flatnonzero(idx == i), dtype=torch.long, device=device), 1:]
        for i in range(batch)
    ], order


def rounded_rois(rois, dtype):
    return to_np(torch.as_tensor(rois).to(dtype))


def as_inputs(x, rois, dtype, device, layout="contiguous", fmt="tensor"):
    """The kernel's arguments for map ``x`` and RoIs ``rois`` (the map in ``layout``, the RoIs
    as ``boxes_arg`` gives them, in ``fmt``) and the reference's: the map and the RoIs as the
    kernel sees them (rounded to ``dtype``, in the kernel's RoI order)."""
    inp = make_input(x, dtype, device, layout)
    boxes, order = boxes_arg(rois, fmt, x.shape[0], dtype, device)
    return inp, boxes, to_np(inp), rounded_rois(rois, dtype)[order]


@contextlib.contextmanager
def deterministic_algorithms():
    """``torch.use_deterministic_algorithms(True)`` for the block, then the previous setting."""
    prev = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev)


def check_backward_deterministic(pool, device, layout, seed):
    """The input gradient of ``pool(input, rois, deterministic=...)`` (7x7 bins at scale 1/16)
    has the same bits for 1 and 2 threads, run to run, with ``deterministic=True`` on every
    backend (the CUDA default is the atomic backward) and with the flag left at None under
    ``torch.use_deterministic_algorithms``. 96 overlapping RoIs on 2 images, so that many RoIs
    add into the same cells."""
    rng = np.random.default_rng(seed)
    x = make_input(rng.normal(size=(2, 24, 20, 20)), torch.float32, device, layout)
    xy = rng.uniform(-5, 300, size=(96, 2))
    rois = torch.as_tensor(
        np.concatenate([rng.integers(0, 2, (96, 1)), xy, xy + rng.uniform(1, 200, (96, 2))], 1),
        dtype=torch.float32,
        device=device,
    )
    g = torch.randn(96, 24, 7, 7, device=device)

    def grad(det=None):
        inp = x.clone().requires_grad_()
        return torch.autograd.grad(pool(inp, rois, deterministic=det), inp, g)[0]

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = grad(det=True)
        torch.set_num_threads(2)
        others = [grad(det=True), grad(det=True)]
        with deterministic_algorithms():
            others.append(grad())
    finally:
        torch.set_num_threads(threads)
    assert one.abs().sum() > 0
    for other in others:
        assert torch.equal(one, other)
