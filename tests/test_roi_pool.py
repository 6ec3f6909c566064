"""roi_pool: kernel vs NumPy reference (output, argmax-driven backward), gradcheck, the
constant-map property, torchvision. What it shares with roi_align: test_roi_shared.py."""

import numpy as np
import pytest
import torch
import torchvision
from helpers import DEVICES, DTYPES, FULL, check_close, check_result_tensor, compute_eps, to_np
from hypothesis import given
from hypothesis import strategies as st
from roi_helpers import LAYOUTS, as_inputs, check_grad, check_torchvision, draw_case, geometry

import frcnn_fast
import frcnn_fast.reference as R


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), layout=st.sampled_from(LAYOUTS), fmt=st.sampled_from(["tensor", "list"]))
def test_roi_pool_matches_reference(device, dtype, data, layout, fmt):
    x, scale, rois, pooled = draw_case(data)
    inp, boxes, xr, rr = as_inputs(x, rois, dtype, device, layout, fmt)
    inp.requires_grad_()
    out = frcnn_fast.roi_pool(inp, boxes, pooled, scale)
    check_result_tensor(out, dtype, device, (len(rois), x.shape[1], *pooled))
    expected, argmax = R.roi_pool_with_argmax(xr, rr, pooled, scale, geometry=geometry(dtype))
    # a max is exact: the kernel returns one of the input values
    check_close(to_np(out), expected, 0, 0, rois=rr, scale=scale)

    check_grad(
        out, inp, lambda g: R.roi_pool_backward(g, rr, argmax, x.shape), rr, pooled, eps_factor=8
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FULL)
@given(data=st.data())
def test_roi_pool_matches_torchvision(device, dtype, data):
    """The same maxima (exact) and, up to summation order, the same gradient."""
    x, scale, rois, pooled = draw_case(data)
    grad_tol = 16 * compute_eps(dtype) * len(rois) * pooled[0] * pooled[1] * 4
    check_torchvision(
        lambda t, b: frcnn_fast.roi_pool(t, b, pooled, scale),
        lambda t, b: torchvision.ops.roi_pool(t, b, pooled, scale),
        *(x, rois, dtype, device, 0, grad_tol),
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_roi_pool_constant_map(device, dtype, data):
    """A constant map pools to that constant in every non-empty bin and to 0 in empty ones."""
    x, scale, rois, pooled = draw_case(data)
    value = data.draw(st.sampled_from([-3.5, 0.25, 7.0]))
    inp, boxes, xr, rr = as_inputs(np.full(x.shape, value), rois, dtype, device)
    out = to_np(frcnn_fast.roi_pool(inp, boxes, pooled, scale))
    _, argmax = R.roi_pool_with_argmax(xr, rr, pooled, scale, geometry=geometry(dtype))
    assert np.all(out[argmax >= 0] == value)
    assert np.all(out[argmax < 0] == 0)


@pytest.mark.parametrize("device", DEVICES)
def test_roi_pool_gradcheck(device):
    rng = np.random.default_rng(5)
    # distinct values: the max of each bin is unique, so the function is differentiable
    x = torch.as_tensor(
        rng.permutation(2 * 3 * 7 * 9).reshape(2, 3, 7, 9) / 10.0, device=device
    ).requires_grad_()
    rois = torch.tensor(
        [[0, 1.1, 0.7, 6.3, 5.9], [1, -2.3, 2.2, 4.1, 9.7], [1, 5.2, 1.3, 12.1, 6.6]],
        dtype=torch.float64,
        device=device,
    )
    assert torch.autograd.gradcheck(lambda t: frcnn_fast.roi_pool(t, rois, (2, 3), 0.9), (x,))
