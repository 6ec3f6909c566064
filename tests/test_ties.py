"""Tie-heavy inputs, where the order of equal values decides the answer: RoI max pooling on
ReLU-like, quantised and plateaued maps (the first of equal maxima wins, in the forward's
argmax and so in which cell the backward feeds), and NMS on equal scores, duplicate boxes and
equal IoUs (ties in input order). Every implementation must agree exactly: the NumPy
reference, the CPU kernels, the emulated CUDA kernels (under uniform and PCT schedules) and
torchvision where it defines the same thing."""

import cuda_emu
import numpy as np
import pytest
import torch
import torchvision
from helpers import (
    DEVICES,
    DTYPES,
    FULL,
    integer_grads,
    lattice_boxes,
    tie_maps,
    tie_rois,
    tie_scores,
    to_np,
    to_tensor,
)
from hypothesis import given
from hypothesis import strategies as st
from roi_helpers import geometry, make_input, rounded_rois

import frcnn_fast
import frcnn_fast.reference as R

ops = torch.ops.frcnn_fast

# (seed, workers, max_grid_dim, schedule) for the explicit CUDA-vs-CPU comparisons
SCHEDULES = (
    (31, 2, 65535, "uniform"),
    (32, 2, 2, "pct"),
    (33, 1, 1, "pct"),
    (34, 2, 3, "uniform"),
)


def _bits(a):
    """The values' bits (0.0 and -0.0 differ), as an integer array."""
    a = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
    return a.view(np.int64)


def _assert_same_bits(actual, expected, what, **context):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    bad = np.argwhere(_bits(actual) != _bits(expected))
    assert len(bad) == 0, (
        f"{what}: {len(bad)} of {expected.size} differ, first at {bad[:6].tolist()}: "
        f"{actual[tuple(bad[0])]!r} != {expected[tuple(bad[0])]!r}; {context}"
    )


def _pool_case(data):
    x = data.draw(tie_maps(), label="x")
    scale = data.draw(st.sampled_from([1.0, 0.5, 0.25]), label="spatial_scale")
    rois = data.draw(tie_rois(x.shape[0], x.shape[2], x.shape[3], scale), label="rois")
    pooled = data.draw(st.tuples(st.integers(1, 4), st.integers(1, 4)), label="output_size")
    return x, scale, rois, pooled


# ============================================================ RoI pooling
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), layout=st.sampled_from(["contiguous", "channels_last"]))
def test_roi_pool_ties_match_reference(device, dtype, data, layout):
    """Forward values (to the bit, signed zeros included), argmax and the gradient of both
    backward algorithms equal the reference's: the first maximum in row-major cell order."""
    x, scale, rois, pooled = _pool_case(data)
    inp = make_input(x, dtype, device, layout)
    boxes = torch.as_tensor(rois).to(dtype=dtype, device=device)
    out, argmax = ops.roi_pool(inp, boxes, scale, pooled[0], pooled[1], False)
    xr, rr = to_np(inp), rounded_rois(rois, dtype)
    expected, expected_arg = R.roi_pool_with_argmax(xr, rr, pooled, scale, geometry(dtype))
    assert to_np(argmax).tolist() == expected_arg.tolist(), f"argmax; rois={rr}, scale={scale}"
    _assert_same_bits(to_np(out), expected, "output", rois=rr)

    g = integer_grads(np.random.default_rng(len(rois)), out.shape)
    grad = torch.as_tensor(g).to(dtype=dtype, device=device)
    cl = layout == "channels_last"
    if cl:
        grad = grad.contiguous(memory_format=torch.channels_last)
    expected_g = R.roi_pool_backward(g, rr, expected_arg, x.shape)
    for deterministic in (True, False):
        gi = ops._roi_pool_backward(grad, boxes, argmax, *x.shape, cl, deterministic)
        _assert_same_bits(to_np(gi), expected_g, f"grad_input (deterministic={deterministic})")

    # and through autograd, as users reach it
    a = inp.detach().clone().requires_grad_()
    (ga,) = torch.autograd.grad(frcnn_fast.roi_pool(a, boxes, pooled, scale), a, grad)
    _assert_same_bits(to_np(ga), expected_g, "autograd grad_input")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FULL)
@given(data=st.data())
def test_roi_pool_ties_match_torchvision(device, dtype, data):
    x, scale, rois, pooled = _pool_case(data)
    inp = torch.as_tensor(x).to(dtype=dtype, device=device)
    boxes = torch.as_tensor(rois).to(dtype=dtype, device=device)
    a, b = inp.clone().requires_grad_(), inp.clone().requires_grad_()
    ours = frcnn_fast.roi_pool(a, boxes, pooled, scale)
    theirs = torchvision.ops.roi_pool(b, boxes, pooled, scale)
    _assert_same_bits(to_np(ours), to_np(theirs), "output")
    g = torch.as_tensor(integer_grads(np.random.default_rng(1), ours.shape)).to(ours)
    (ga,) = torch.autograd.grad(ours, a, g)
    (gb,) = torch.autograd.grad(theirs, b, g)
    _assert_same_bits(to_np(ga), to_np(gb), "grad_input")


@pytest.mark.cuda_emu
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), layout=st.sampled_from(["contiguous", "channels_last"]))
def test_roi_pool_ties_cuda_equals_cpu_under_both_schedules(dtype, data, layout):
    """The emulated CUDA kernels give the CPU kernels' bits under uniform and PCT schedules;
    integer gradients make even the atomic backward exact."""
    x, scale, rois, pooled = _pool_case(data)
    inp = make_input(x, dtype, "cpu", layout)
    boxes = torch.as_tensor(rois).to(dtype)
    cl = layout == "channels_last"

    def run():
        out, arg = ops.roi_pool(inp, boxes, scale, pooled[0], pooled[1], False)
        g = torch.as_tensor(integer_grads(np.random.default_rng(0), out.shape)).to(out)
        g = g.contiguous(memory_format=torch.channels_last) if cl else g
        return [
            out,
            arg,
            *(ops._roi_pool_backward(g, boxes, arg, *x.shape, cl, det) for det in (True, False)),
        ]

    want = run()
    for seed, workers, cap, schedule in SCHEDULES:
        with cuda_emu.emulated(seed, workers, cap, schedule=schedule):
            got = run()
        for name, a, b in zip(("output", "argmax", "det grad", "atomic grad"), got, want):
            _assert_same_bits(to_np(a), to_np(b), name, schedule=schedule, seed=seed)


# ============================================================ NMS
THRESHOLDS = st.sampled_from([0.0, 1 / 3, 0.5, 0.6, 0.7, 1.0])


def _compute(dtype):
    return np.float64 if dtype == torch.float64 else np.float32


@st.composite
def _tie_nms_inputs(draw):
    if draw(st.booleans()):
        boxes = draw(lattice_boxes())
    else:  # few distinct boxes, each repeated
        distinct = draw(lattice_boxes(max_n=6))
        boxes = distinct[draw(st.lists(st.integers(0, len(distinct) - 1), max_size=150))]
    return boxes, draw(tie_scores(len(boxes)))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), thr=THRESHOLDS, groups=st.integers(1, 3))
def test_nms_ties_match_reference(device, dtype, data, thr, groups):
    """Equal scores (input order decides), duplicates (IoU 1) and lattices whose neighbours all
    have the same IoU, often exactly the threshold (kept: suppression is strictly above it);
    up to 200 boxes, so the CUDA kernels' multi-block reduction runs."""
    boxes, scores = data.draw(_tie_nms_inputs())
    b, s = to_tensor(boxes, dtype, device), to_tensor(scores, dtype, device)
    got = frcnn_fast.nms(b, s, thr)
    want = R.nms(to_np(b), to_np(s), thr, compute_dtype=_compute(dtype))
    assert got.cpu().tolist() == want.tolist(), f"nms {got.tolist()} != {want.tolist()}"
    idxs = np.random.default_rng(len(boxes)).integers(0, groups, len(boxes))
    got = frcnn_fast.batched_nms(b, s, torch.as_tensor(idxs).to(b.device), thr)
    want = R.batched_nms(to_np(b), to_np(s), idxs, thr, compute_dtype=_compute(dtype))
    assert got.cpu().tolist() == want.tolist(), f"batched {got.tolist()} != {want.tolist()}"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("n", [65, 130, 257])
def test_nms_all_equal_scores_and_boxes(device, n):
    """n copies of one box with one score: the first is kept, it removes all others; n copies of
    a lattice row with equal scores: every other box survives (neighbour IoU exactly 0.5)."""
    box = torch.tensor([[1.0, 2.0, 5.0, 7.0]]).repeat(n, 1)
    scores = torch.full((n,), 0.5)
    assert frcnn_fast.nms(box, scores, 0.5).tolist() == [0]
    x = torch.arange(n, dtype=torch.float32)
    row = torch.stack([x, torch.zeros(n), x + 3, torch.ones(n)], 1)  # IoU(i, i+1) = 2/4
    assert frcnn_fast.nms(row, scores, 0.5).tolist() == list(range(n))
    assert frcnn_fast.nms(row, scores, 0.49).tolist() == list(range(0, n, 2))


@pytest.mark.cuda_emu
def test_nms_multi_warp_reduction_under_pct():
    """65 words per row: the reduction runs two warps, and warp 1 may still read the kept bits
    of one 64-box block while warp 0 resolves the next (what the barrier at the end of its loop
    prevents). PCT schedules starve warp 1 in about half the blocks they run."""
    rng = np.random.default_rng(5)
    n = 64 * 65
    centres = rng.uniform(0, 1000, size=(n, 2))
    sides = rng.uniform(20, 120, size=(n, 2))
    boxes = torch.as_tensor(np.round(np.concatenate([centres, centres + sides], 1) * 8) / 8)
    scores = torch.as_tensor(rng.permutation(n) / n)
    want = frcnn_fast.nms(boxes, scores, 0.3)
    # Under a sanitizer (ten minutes of ASan at 4 x 3) one PCT-scheduled launch after the
    # learning one: the tools look for the race itself, not for its wrong answer.
    seeds, launches = (1, 2) if cuda_emu.sanitized() else (4, 3)
    for seed in range(seeds):
        with cuda_emu.emulated(seed, 2, 65535, schedule="pct"):
            # the first launch teaches PCT the kernel's step count (its change points are
            # drawn over it); every launch must give the CPU's answer
            for launch in range(launches):
                got = frcnn_fast.nms(boxes, scores, 0.3)
                assert got.tolist() == want.tolist(), f"seed {seed}, launch {launch}"
