"""roi_pool without gradients: the wrapper runs roi_pool_inference (no argmax) under
torch.no_grad() or for an input that does not require grad, with the same output bits and
layout as the differentiable op, on every backend."""

import pytest
import torch
from helpers import DEVICES, DTYPES
from hypothesis import given
from hypothesis import strategies as st
from roi_helpers import LAYOUTS, SCALES, boxes_arg, feature_maps, make_input, roi_sets
from torch.utils._python_dispatch import TorchDispatchMode

import frcnn_fast


class _OpLog(TorchDispatchMode):
    """Names of the frcnn_fast ops called inside the block."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == "frcnn_fast":
            self.ops.append(func._schema.name.split("::")[1])
        return func(*args, **(kwargs or {}))


def _same_bits(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype and a.stride() == b.stride()
    # NaN where NaN (a max over NaN cells is not in this suite's inputs, but -inf/0 are).
    assert torch.equal(a.isnan(), b.isnan())
    assert torch.equal(a.nan_to_num(), b.nan_to_num())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), layout=st.sampled_from(LAYOUTS))
def test_no_grad_output_is_the_differentiable_output(device, dtype, data, layout):
    x = data.draw(feature_maps(), label="x")
    scale = data.draw(SCALES, label="spatial_scale")
    rois = data.draw(roi_sets(x.shape[0], x.shape[2], x.shape[3], scale), label="rois")
    pooled = data.draw(st.tuples(st.integers(1, 4), st.integers(1, 4)), label="output_size")
    inp = make_input(x, dtype, device, layout)
    boxes, _ = boxes_arg(rois, "tensor", x.shape[0], dtype, device)

    with_grad = frcnn_fast.roi_pool(inp.detach().requires_grad_(), boxes, pooled, scale)
    with torch.no_grad():
        no_grad = frcnn_fast.roi_pool(inp.detach().requires_grad_(), boxes, pooled, scale)
    plain = frcnn_fast.roi_pool(inp, boxes, pooled, scale)  # an input that needs no grad
    direct = torch.ops.frcnn_fast.roi_pool_inference(inp, boxes, scale, *pooled)
    for got in (no_grad, plain, direct):
        _same_bits(got, with_grad.detach())
    assert not no_grad.requires_grad and not plain.requires_grad


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_the_wrapper_picks_the_op_by_grad_mode(layout):
    x = make_input(torch.randn(2, 3, 9, 9).numpy(), torch.float32, "cpu", layout)
    rois = torch.tensor([[0, 1.0, 1.0, 6.0, 7.0], [1, 0.0, 2.0, 8.0, 8.0]])

    def ops(inp, grad_mode=True):
        with torch.set_grad_enabled(grad_mode), _OpLog() as log:
            frcnn_fast.roi_pool(inp, rois, 3, 1.0)
        return log.ops

    assert ops(x.detach().requires_grad_()) == ["roi_pool"]
    assert ops(x.detach().requires_grad_(), grad_mode=False) == ["roi_pool_inference"]
    assert ops(x) == ["roi_pool_inference"]
    # The module form too (what an eval-mode detector runs).
    with torch.no_grad(), _OpLog() as log:
        frcnn_fast.RoIPool(3, 1.0)(x, rois)
    assert log.ops == ["roi_pool_inference"]


def test_roi_pool_inference_has_no_gradient():
    x = torch.randn(1, 2, 6, 6, requires_grad=True)
    rois = torch.tensor([[0, 1.0, 1.0, 4.0, 4.0]])
    out = torch.ops.frcnn_fast.roi_pool_inference(x, rois, 1.0, 2, 2)
    with pytest.raises(RuntimeError, match="roi_pool_inference has no argmax"):
        out.sum().backward()


def test_compiled_no_grad_matches_eager():
    x = torch.randn(2, 4, 10, 12)
    rois = torch.tensor(
        [[0, 1.0, 1.0, 6.0, 7.0], [1, 0.0, 2.0, 11.0, 9.0], [0, 3.0, 3.0, 3.0, 3.0]]
    )
    fn = lambda t, r: frcnn_fast.roi_pool(t, r, (3, 2), 0.5) * 2  # noqa: E731
    torch._dynamo.reset()
    with torch.no_grad():
        got = torch.compile(fn, fullgraph=True)(x, rois)
    _same_bits(got, fn(x, rois))
