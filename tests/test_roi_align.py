"""roi_align: kernel vs NumPy reference (forward and backward), gradcheck, the rescaling
property, torchvision. What it shares with roi_pool: test_roi_shared.py."""

import numpy as np
import pytest
import torch
import torchvision
from helpers import (
    DEVICES,
    DTYPES,
    FULL,
    RTOL,
    check_close,
    check_result_tensor,
    compute_eps,
    to_np,
)
from hypothesis import given
from hypothesis import strategies as st
from roi_helpers import LAYOUTS, as_inputs, check_grad, check_torchvision, draw_case, geometry

import frcnn_fast
import frcnn_fast.reference as R


def _case(data):
    x, scale, rois, pooled = draw_case(data)
    sampling = data.draw(st.sampled_from([-1, 0, 1, 2, 3]), label="sampling_ratio")
    aligned = data.draw(st.booleans(), label="aligned")
    return x, scale, rois, pooled, sampling, aligned


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), layout=st.sampled_from(LAYOUTS), fmt=st.sampled_from(["tensor", "list"]))
def test_roi_align_matches_reference(device, dtype, data, layout, fmt):
    x, scale, rois, pooled, sampling, aligned = _case(data)
    inp, boxes, xr, rr = as_inputs(x, rois, dtype, device, layout, fmt)
    inp.requires_grad_()
    out = frcnn_fast.roi_align(inp, boxes, pooled, scale, sampling, aligned)
    check_result_tensor(out, dtype, device, (len(rois), x.shape[1], *pooled))
    g = geometry(dtype)
    expected = R.roi_align(xr, rr, pooled, scale, sampling, aligned, geometry=g)
    # an average of values |v| <= max|x|: error of the float32/64 sums plus one final rounding
    atol = 16 * compute_eps(dtype) * np.abs(xr).max() + RTOL[dtype] * 1e-3
    check_close(
        to_np(out),
        expected,
        RTOL[dtype],
        atol,
        rois=rr,
        scale=scale,
        sampling=sampling,
        aligned=aligned,
    )

    check_grad(
        out,
        inp,
        lambda grad: R.roi_align_backward(grad, rr, x.shape, scale, sampling, aligned, geometry=g),
        *(rr, pooled),
        eps_factor=16,
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FULL)
@given(data=st.data())
def test_roi_align_matches_torchvision(device, dtype, data):
    """Forward and gradient equal torchvision.ops.roi_align (same geometry type: exact bins)."""
    x, scale, rois, pooled, sampling, aligned = _case(data)
    tol = 64 * compute_eps(dtype) * max(1.0, np.abs(x).max())
    check_torchvision(
        lambda t, b: frcnn_fast.roi_align(t, b, pooled, scale, sampling, aligned),
        lambda t, b: torchvision.ops.roi_align(t, b, pooled, scale, sampling, aligned),
        *(x, rois, dtype, device, tol, tol * len(rois) * pooled[0] * pooled[1]),
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_roi_align_gradcheck(device, aligned, sampling_ratio):
    rng = np.random.default_rng(3)
    x = torch.as_tensor(rng.normal(size=(2, 3, 7, 9)), device=device).requires_grad_()
    # coordinates off the cell grid so that no sample sits on a kink of the interpolant
    rois = torch.tensor(
        [
            [0, 1.1, 0.7, 6.3, 5.9],
            [1, -2.3, 2.2, 4.1, 9.7],
            [0, 3.3, 3.1, 3.7, 3.4],
            [1, 5.2, 1.3, 12.1, 6.6],
        ],
        dtype=torch.float64,
        device=device,
    )
    assert torch.autograd.gradcheck(
        lambda t: frcnn_fast.roi_align(t, rois, (2, 3), 0.9, sampling_ratio, aligned), (x,)
    )


def _upsample(x, s, aligned):
    """Values of x's bilinear interpolant on a grid s times finer (independent of the kernels):
    cell i of the fine map sits at i / s (aligned=False, corners kept) or at (i + 0.5) / s - 0.5
    (aligned=True, pixel centres)."""
    n, c, h, w = x.shape
    if aligned:
        ys, xs = (np.arange(s * h) + 0.5) / s - 0.5, (np.arange(s * w) + 0.5) / s - 0.5
    else:
        ys, xs = np.arange(s * (h - 1) + 1) / s, np.arange(s * (w - 1) + 1) / s
    rows = np.stack(
        [
            [[np.interp(ys, np.arange(h), x[i, j, :, k]) for k in range(w)] for j in range(c)]
            for i in range(n)
        ]
    )
    rows = rows.transpose(0, 1, 3, 2)  # [n, c, fine h, w]
    return np.stack(
        [
            [
                [np.interp(xs, np.arange(w), rows[i, j, r]) for r in range(rows.shape[2])]
                for j in range(c)
            ]
            for i in range(n)
        ]
    )


@pytest.mark.parametrize("device", DEVICES)
@given(data=st.data())
def test_roi_align_rescale_invariance(device, data):
    """RoIAlign(X, B) == RoIAlign(X_s, s*B) where X_s samples X's bilinear interpolant on a grid
    s times finer, exactly when: sampling_ratio is fixed (the adaptive grid ceil(s*h/PH) would
    change), every sample lies inside [0, H-1] x [0, W-1] (the fine map's border rules sit at
    other places), the box is at least one cell wide and high (aligned=False clamps smaller
    ones to 1 cell on either map), and for aligned=True, s is odd (pixel-centre grids then
    share the coarse knots)."""
    aligned = data.draw(st.booleans(), label="aligned")
    s = data.draw(st.sampled_from([3] if aligned else [2, 3]), label="s")
    x = np.random.default_rng(data.draw(st.integers(0, 1000))).normal(size=(1, 2, 6, 7))
    sampling = data.draw(st.integers(1, 3), label="sampling_ratio")
    off = 0.5 if aligned else 0.0
    k = data.draw(st.integers(1, 4))
    rows = []
    for _ in range(k):
        x1 = data.draw(st.integers(0, 8 * 4)) / 8 + off
        y1 = data.draw(st.integers(0, 8 * 3)) / 8 + off
        w = data.draw(st.integers(8, 8 * 6)) / 8
        h = data.draw(st.integers(8, 8 * 5)) / 8
        rows.append([0, x1, y1, min(x1 + w, 6 + off), min(y1 + h, 5 + off)])
    rois = np.asarray(rows)
    rois[:, 3:] = np.maximum(rois[:, 3:], rois[:, 1:3] + 1)
    fine = _upsample(x, s, aligned)
    t = lambda a: torch.as_tensor(a, dtype=torch.float64, device=device)  # noqa: E731
    coarse_out = frcnn_fast.roi_align(t(x), t(rois), (2, 3), 1.0, sampling, aligned)
    big = rois.copy()
    big[:, 1:] *= s
    fine_out = frcnn_fast.roi_align(t(fine), t(big), (2, 3), 1.0, sampling, aligned)
    check_close(to_np(fine_out), to_np(coarse_out), 1e-9, 1e-9, rois=rois, s=s)


def test_roi_align_module_keeps_its_settings():
    m = frcnn_fast.RoIAlign((3, 3), 0.25, 2, aligned=True)
    x, rois = torch.randn(1, 2, 8, 8), torch.tensor([[0, 1.0, 1.0, 30.0, 20.0]])
    assert torch.equal(m(x, rois), frcnn_fast.roi_align(x, rois, (3, 3), 0.25, 2, True))
    assert "sampling_ratio=2, aligned=True" in repr(m)
