"""What roi_pool and roi_align promise alike: no RoIs and non-finite RoIs are fine, the backward
has the same bits for any thread count, the module equals the function, and double backward is
refused rather than silently wrong."""

import pytest
import torch
from helpers import DEVICES, DTYPES, check_result_tensor
from roi_helpers import check_backward_deterministic, make_input

import frcnn_fast

# Each op as f(input, rois, output_size, spatial_scale, **kw), roi_align at a detector's usual
# sampling_ratio=2, aligned=False, and its module form with the same settings.
POOLS = {
    "roi_pool": lambda x, rois, size, scale, **kw: frcnn_fast.roi_pool(x, rois, size, scale, **kw),
    "roi_align": lambda x, rois, size, scale, **kw: frcnn_fast.roi_align(
        x, rois, size, scale, 2, False, **kw
    ),
}
MODULES = {
    "roi_pool": lambda size, scale: frcnn_fast.RoIPool(size, scale),
    "roi_align": lambda size, scale: frcnn_fast.RoIAlign(size, scale, 2, aligned=False),
}
OPS = list(POOLS)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_backward_deterministic(op, device, layout):
    check_backward_deterministic(
        lambda x, rois, **kw: POOLS[op](x, rois, 7, 1 / 16, **kw), device, layout, len(op)
    )


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_backward_reads_the_gradient_in_any_layout(op, device, layout):
    """The upstream gradient comes NCHW, channels-last or as a strided view whatever the map's
    layout (a flatten after the pooling hands back NCHW; a channels-last consumer may not):
    every form gives the bits of the contiguous one. Shapes with no size-1 dimension, so that
    no two layouts coincide."""
    g = torch.Generator().manual_seed(3)
    x = make_input(torch.randn(2, 6, 9, 11, generator=g).numpy(), torch.float32, device, layout)
    xy = torch.rand(12, 2, generator=g) * 8
    rois = torch.cat(
        [
            torch.randint(0, 2, (12, 1), generator=g),
            xy,
            xy + 1 + torch.rand(12, 2, generator=g) * 8,
        ],
        dim=1,
    ).to(device)
    grad = torch.randn(12, 6, 3, 4, generator=g).to(device)
    wide = torch.zeros(12, 6, 3, 8, device=device)
    wide[..., ::2] = grad
    forms = {
        "contiguous": grad,
        "channels_last": grad.contiguous(memory_format=torch.channels_last),
        "strided": wide[..., ::2],
    }

    def backward(gradient):
        inp = x.detach().clone().requires_grad_()
        # deterministic: CUDA's default backward sums with atomics, in no fixed order
        out = POOLS[op](inp, rois, (3, 4), 1.0, deterministic=True)
        return torch.autograd.grad(out, inp, gradient)[0]

    expected = backward(forms["contiguous"])
    assert expected.abs().sum() > 0
    for name, gradient in forms.items():
        assert torch.equal(backward(gradient), expected), name


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_no_rois(op, device, dtype):
    x = torch.randn(2, 3, 5, 5, device=device).to(dtype).requires_grad_()
    out = POOLS[op](x, torch.zeros(0, 5, dtype=dtype, device=device), (2, 2), 1.0)
    check_result_tensor(out, dtype, device, (0, 3, 2, 2))
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    per_image = POOLS[op](x, [torch.zeros(0, 4, dtype=dtype, device=device)] * 2, 3, 1.0)
    check_result_tensor(per_image, dtype, device, (0, 3, 3, 3))


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("device", DEVICES)
def test_nonfinite_rois_give_zero(op, device):
    """NaN or infinite coordinates pool to 0 with a finite gradient (no UB in the float-to-int
    bin arithmetic), a RoI far outside the map too; the finite RoI beside them is unaffected."""
    x = torch.randn(1, 2, 6, 6, device=device).requires_grad_()
    nan, inf = float("nan"), float("inf")
    rois = torch.tensor(
        [[0, nan, 0, 3, 3], [0, 0, 0, inf, 3], [0, -inf, 1, 2, 2], [0, 1e30, 1, 2, 2]]
        + [[0, 1, 1, 4, 4]],
        device=device,
    )
    out = POOLS[op](x, rois, 2, 1.0)
    assert torch.equal(out[:4], torch.zeros_like(out[:4]))
    assert out[4].abs().sum() > 0
    out.sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("op", OPS)
def test_module_matches_function(op):
    x = torch.randn(1, 2, 8, 8)
    rois = torch.tensor([[0, 1.0, 1.0, 30.0, 20.0]])
    m = MODULES[op]((3, 3), 0.25)
    assert torch.equal(m(x, rois), POOLS[op](x, rois, (3, 3), 0.25))
    assert "spatial_scale=0.25" in repr(m)


@pytest.mark.parametrize("op", OPS)
def test_double_backward_raises(op):
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 1.0, 1.0, 4.0, 4.0]], dtype=torch.float64)
    (g,) = torch.autograd.grad(POOLS[op](x, rois, 2, 1.0).pow(2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        g.sum().backward()
