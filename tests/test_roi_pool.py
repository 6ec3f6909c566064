"""roi_pool / RoIPool: kernel vs NumPy reference (output, argmax-driven backward), gradcheck,
determinism, the constant-map property, torchvision."""

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
from roi_helpers import (
    LAYOUTS,
    SCALES,
    boxes_arg,
    check_backward_deterministic,
    feature_maps,
    geometry,
    make_input,
    roi_sets,
    rounded_rois,
)

import frcnn_fast
import frcnn_fast.reference as R


def _case(data):
    x = data.draw(feature_maps(), label="x")
    scale = data.draw(SCALES, label="spatial_scale")
    rois = data.draw(roi_sets(x.shape[0], x.shape[2], x.shape[3], scale), label="rois")
    pooled = data.draw(st.tuples(st.integers(1, 4), st.integers(1, 4)), label="output_size")
    return x, scale, rois, pooled


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), layout=st.sampled_from(LAYOUTS), fmt=st.sampled_from(["tensor", "list"]))
def test_roi_pool_matches_reference(device, dtype, data, layout, fmt):
    x, scale, rois, pooled = _case(data)
    inp = make_input(x, dtype, device, layout).requires_grad_()
    boxes, order = boxes_arg(rois, fmt, x.shape[0], dtype, device)
    out = frcnn_fast.roi_pool(inp, boxes, pooled, scale)
    check_result_tensor(out, dtype, device, (len(rois), x.shape[1], *pooled))
    xr, rr = to_np(inp), rounded_rois(rois, dtype)[order]
    expected, argmax = R.roi_pool_with_argmax(xr, rr, pooled, scale, geometry=geometry(dtype))
    # a max is exact: the kernel returns one of the input values
    check_close(to_np(out), expected, 0, 0, rois=rr, scale=scale)

    grad = torch.as_tensor(np.random.default_rng(len(rois)).normal(size=out.shape)).to(
        dtype=dtype, device=device
    )
    (gi,) = torch.autograd.grad(out, inp, grad)
    check_result_tensor(gi, dtype, device, x.shape)
    expected_g = R.roi_pool_backward(to_np(grad), rr, argmax, x.shape)
    mag = max(1, len(rois) * pooled[0] * pooled[1]) * (
        np.abs(to_np(grad)).max() if grad.numel() else 0
    )
    check_close(to_np(gi), expected_g, RTOL[dtype], 8 * compute_eps(dtype) * mag + 1e-12, rois=rr)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FULL)
@given(data=st.data())
def test_roi_pool_matches_torchvision(device, dtype, data):
    x, scale, rois, pooled = _case(data)
    inp = torch.as_tensor(x).to(dtype=dtype, device=device)
    boxes = torch.as_tensor(rois).to(dtype=dtype, device=device)
    a, b = inp.clone().requires_grad_(), inp.clone().requires_grad_()
    ours = frcnn_fast.roi_pool(a, boxes, pooled, scale)
    theirs = torchvision.ops.roi_pool(b, boxes, pooled, scale)
    assert torch.equal(ours, theirs)
    if len(rois):
        g = torch.randn_like(ours)
        (ga,) = torch.autograd.grad(ours, a, g)
        (gb,) = torch.autograd.grad(theirs, b, g)
        check_close(
            to_np(ga), to_np(gb), 0, 16 * compute_eps(dtype) * len(rois) * pooled[0] * pooled[1] * 4
        )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_roi_pool_constant_map(device, dtype, data):
    """A constant map pools to that constant in every non-empty bin and to 0 in empty ones."""
    x, scale, rois, pooled = _case(data)
    value = data.draw(st.sampled_from([-3.5, 0.25, 7.0]))
    inp = torch.full(x.shape, value, dtype=dtype, device=device)
    out = to_np(
        frcnn_fast.roi_pool(
            inp, torch.as_tensor(rois).to(dtype=dtype, device=device), pooled, scale
        )
    )
    _, argmax = R.roi_pool_with_argmax(
        np.full(x.shape, value), rounded_rois(rois, dtype), pooled, scale, geometry=geometry(dtype)
    )
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


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_roi_pool_backward_deterministic(device, layout):
    check_backward_deterministic(
        lambda x, rois, **kw: frcnn_fast.roi_pool(x, rois, 7, 1 / 16, **kw), device, layout, 2
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_roi_pool_empty(device, dtype):
    x = torch.randn(2, 3, 5, 5, device=device).to(dtype).requires_grad_()
    out = frcnn_fast.roi_pool(x, torch.zeros(0, 5, dtype=dtype, device=device), (2, 2))
    check_result_tensor(out, dtype, device, (0, 3, 2, 2))
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("device", DEVICES)
def test_roi_pool_nonfinite_boxes_give_zero(device):
    x = torch.randn(1, 2, 6, 6, device=device)
    nan, inf = float("nan"), float("inf")
    rois = torch.tensor([[0, nan, 0, 3, 3], [0, 0, 0, inf, 3], [0, 1e30, 1, 2, 2]], device=device)
    out = frcnn_fast.roi_pool(x, rois, 2, 1.0)
    assert torch.equal(out[:2], torch.zeros_like(out[:2]))
    assert torch.isfinite(out).all()


def test_roi_pool_module_and_double_backward():
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 1.0, 1.0, 4.0, 4.0]], dtype=torch.float64)
    m = frcnn_fast.RoIPool(2, 1.0)
    assert torch.equal(m(x, rois), frcnn_fast.roi_pool(x, rois, 2))
    (g,) = torch.autograd.grad(m(x, rois).pow(2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        g.sum().backward()
