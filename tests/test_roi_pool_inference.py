"""roi_pool without a stored argmax: the wrapper runs roi_pool_inference (no argmax) under
torch.no_grad(), for an input that does not require grad, and on CPU always, with the same
output bits and layout as the op with argmax, on every backend; on CPU its backward recomputes
the argmax from the input and gives the same gradient bits as the stored-argmax backward."""

import importlib

import pytest
import torch
from helpers import DEVICES, DTYPES
from hypothesis import given
from hypothesis import strategies as st
from roi_helpers import LAYOUTS, SCALES, boxes_arg, feature_maps, make_input, roi_sets
from torch.utils._python_dispatch import TorchDispatchMode

import frcnn_fast
from frcnn_fast.ops._roi import channels_last

ROI_POOL_MODULE = importlib.import_module("frcnn_fast.ops.roi_pool")
ops = torch.ops.frcnn_fast


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
@pytest.mark.parametrize("many_rois", [False, True])
def test_the_wrapper_picks_the_op_by_grad_mode(layout, many_rois, monkeypatch):
    x = make_input(torch.randn(2, 3, 9, 9).numpy(), torch.float32, "cpu", layout)
    rois = torch.tensor([[0, 1.0, 1.0, 6.0, 7.0], [1, 0.0, 2.0, 8.0, 8.0]])
    if many_rois:  # 40 x 3 x 3 bins >= 2 x the map's 2 x 9 x 9 cells
        rois = rois.repeat(20, 1)

    def ops_called(inp, grad_mode=True):
        with torch.set_grad_enabled(grad_mode), _OpLog() as log:
            out = frcnn_fast.roi_pool(inp, rois, 3, 1.0)
            if out.requires_grad:
                out.sum().backward()
        return log.ops

    # CPU: the backward recomputes the argmax, except on an NCHW map with few RoIs, where the
    # two layout copies of the map it needs would cost more than the argmax saves
    recompute = layout == "channels_last" or many_rois
    assert ops_called(x.detach().requires_grad_()) == (
        ["roi_pool_inference", "_roi_pool_backward_recompute"]
        if recompute
        else ["roi_pool", "_roi_pool_backward"]
    )
    assert ops_called(x.detach().requires_grad_(), grad_mode=False) == ["roi_pool_inference"]
    assert ops_called(x) == ["roi_pool_inference"]
    # The module form too (what an eval-mode detector runs).
    with torch.no_grad(), _OpLog() as log:
        frcnn_fast.RoIPool(3, 1.0)(x, rois)
    assert log.ops == ["roi_pool_inference"]
    # A backend that stores the argmax (CUDA; the same tensors stand in for it here)
    monkeypatch.setattr(ROI_POOL_MODULE, "RECOMPUTE_ARGMAX_ON", ())
    assert ops_called(x.detach().requires_grad_()) == ["roi_pool", "_roi_pool_backward"]
    assert ops_called(x) == ["roi_pool_inference"]


def test_roi_pool_inference_has_no_gradient_where_the_argmax_is_stored(monkeypatch):
    monkeypatch.setattr(ROI_POOL_MODULE, "RECOMPUTE_ARGMAX_ON", ())
    x = torch.randn(1, 2, 6, 6, requires_grad=True)
    rois = torch.tensor([[0, 1.0, 1.0, 4.0, 4.0]])
    out = ops.roi_pool_inference(x, rois, 1.0, 2, 2)
    with pytest.raises(RuntimeError, match="roi_pool_inference has no argmax"):
        out.sum().backward()


GRAD_LAYOUTS = ["contiguous", "channels_last", "transposed"]


def _grad_in(g, layout):
    if layout == "channels_last":
        return g.contiguous(memory_format=torch.channels_last)
    if layout == "transposed":  # neither layout: the kernel copies it
        return g.transpose(2, 3).contiguous().transpose(2, 3)
    return g


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [1, 2])
@given(
    data=st.data(),
    layout=st.sampled_from(["contiguous", "channels_last"]),
    grad_layout=st.sampled_from(GRAD_LAYOUTS),
)
def test_recomputed_argmax_gives_the_stored_argmax_gradient(
    dtype, threads, data, layout, grad_layout
):
    # The same bits as _roi_pool_backward with roi_pool's argmax, on the suite's feature maps
    # (ReLU-like zeros, -inf cells, constant planes: ties everywhere), every gradient layout.
    x = data.draw(feature_maps(), label="x")
    scale = data.draw(SCALES, label="spatial_scale")
    rois = data.draw(roi_sets(x.shape[0], x.shape[2], x.shape[3], scale), label="rois")
    pooled = data.draw(st.tuples(st.integers(1, 4), st.integers(1, 4)), label="output_size")
    inp = make_input(x, dtype, "cpu", layout)
    boxes, _ = boxes_arg(rois, "tensor", x.shape[0], dtype, "cpu")
    out, argmax = ops.roi_pool(inp, boxes, scale, *pooled, False)
    g = torch.randint(-8, 9, out.shape, generator=torch.Generator().manual_seed(len(rois)))
    grad = _grad_in(g.to(dtype), grad_layout)
    cl = channels_last(inp)  # as autograd saves it (a size-1 dimension can make both true)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        expected = ops._roi_pool_backward(grad, boxes, argmax, *inp.shape, cl, True)
        got = ops._roi_pool_backward_recompute(grad, inp, boxes, scale)
    finally:
        torch.set_num_threads(previous)
    _same_bits(got, expected)


def test_recompute_rejects_bad_input():
    x = torch.randn(2, 3, 8, 8)
    rois = torch.tensor([[0, 1.0, 1.0, 6.0, 7.0]])
    g = torch.ones(1, 3, 2, 2)
    with pytest.raises(RuntimeError, match=r"grad must have shape \[1, 3, 2, 2\]"):
        ops._roi_pool_backward_recompute(torch.ones(1, 4, 2, 2), x, rois, 1.0)
    with pytest.raises(RuntimeError, match=r"grad must have shape \[K, C, PH, PW\]"):
        ops._roi_pool_backward_recompute(g[0], x, rois, 1.0)
    with pytest.raises(RuntimeError, match="output_size must be positive"):
        ops._roi_pool_backward_recompute(torch.ones(1, 3, 0, 2), x, rois, 1.0)
    with pytest.raises(RuntimeError, match="batch index"):
        ops._roi_pool_backward_recompute(g, x, torch.tensor([[5, 1.0, 1.0, 6.0, 7.0]]), 1.0)
    with pytest.raises(RuntimeError, match="dtype"):
        ops._roi_pool_backward_recompute(g.double(), x, rois, 1.0)


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
