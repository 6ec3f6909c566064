"""box_iou / box_iou_aligned: kernel vs NumPy reference, properties, torchvision."""

import numpy as np
import pytest
import torch
import torchvision
from helpers import (
    ATOL,
    DEVICES,
    DTYPES,
    FULL,
    LAYOUTS,
    RTOL,
    box_arrays,
    box_pairs,
    check_close,
    check_result_tensor,
    eps,
    random_boxes,
    to_np,
    to_tensor,
)
from hypothesis import given
from hypothesis import strategies as st

import frcnn_fast
import frcnn_fast.reference as R


# ------------------------------------------------------------------ kernel == reference
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(pair=box_pairs(), layouts=st.tuples(st.sampled_from(LAYOUTS), st.sampled_from(LAYOUTS)))
def test_box_iou_matches_reference(device, dtype, pair, layouts):
    a, b = pair
    t1 = to_tensor(a, dtype, device, layouts[0])
    t2 = to_tensor(b, dtype, device, layouts[1])
    out = torch.ops.frcnn_fast.box_iou(t1, t2)
    check_result_tensor(out, dtype, device, (len(a), len(b)))
    expected = R.box_iou(to_np(t1), to_np(t2))
    check_close(to_np(out), expected, RTOL[dtype], ATOL[dtype], boxes1=to_np(t1), boxes2=to_np(t2))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(
    a=box_arrays(max_n=12),
    data=st.data(),
    lead=st.sampled_from([(), (1,), (2,), (3, 1)]),
    layouts=st.tuples(st.sampled_from(LAYOUTS), st.sampled_from(LAYOUTS)),
)
def test_box_iou_aligned_matches_reference(device, dtype, a, data, lead, layouts):
    b = data.draw(box_arrays(n=len(a)))
    if data.draw(st.booleans()) and len(a):
        b[::2] = a[::2]  # some identical pairs
    shape = (*lead, len(a), 4) if lead else (len(a), 4)
    a_ = np.broadcast_to(a, shape).copy()
    b_ = np.broadcast_to(b, shape).copy()
    t1 = to_tensor(a_, dtype, device, layouts[0])
    t2 = to_tensor(b_, dtype, device, layouts[1])
    out = frcnn_fast.box_iou_aligned(t1, t2)
    check_result_tensor(out, dtype, device, shape[:-1])
    expected = R.box_iou_aligned(to_np(t1), to_np(t2))
    check_close(to_np(out), expected, RTOL[dtype], ATOL[dtype], boxes1=to_np(t1), boxes2=to_np(t2))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,m", [(0, 0), (0, 5), (5, 0)])
def test_box_iou_empty(device, dtype, n, m):
    rng = np.random.default_rng(n * 10 + m)
    t1 = to_tensor(random_boxes(rng, n), dtype, device)
    t2 = to_tensor(random_boxes(rng, m), dtype, device)
    out = torch.ops.frcnn_fast.box_iou(t1, t2)
    check_result_tensor(out, dtype, device, (n, m))
    assert R.box_iou(to_np(t1), to_np(t2)).shape == (n, m)
    out = frcnn_fast.box_iou_aligned(t1[:0], t2[:0])
    check_result_tensor(out, dtype, device, (0,))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_box_iou_large(device, dtype):
    """Big enough to cross the CPU kernel's parallel grain and use many CUDA blocks."""
    rng = np.random.default_rng(7)
    a, b = random_boxes(rng, 700), random_boxes(rng, 333)
    b[:50] = a[:50]
    t1, t2 = to_tensor(a, dtype, device, "column_slice"), to_tensor(b, dtype, device)
    out = torch.ops.frcnn_fast.box_iou(t1, t2)
    check_result_tensor(out, dtype, device, (700, 333))
    check_close(to_np(out), R.box_iou(to_np(t1), to_np(t2)), RTOL[dtype], ATOL[dtype])
    aligned = frcnn_fast.box_iou_aligned(t1[:333], t2)
    check_close(
        to_np(aligned), R.box_iou_aligned(to_np(t1[:333]), to_np(t2)), RTOL[dtype], ATOL[dtype]
    )


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
@pytest.mark.parametrize("dtype", DTYPES)
@given(pair=box_pairs(max_n=24))
def test_box_iou_cuda_equals_cpu(dtype, pair):
    a, b = pair
    cpu = frcnn_fast.box_iou(to_tensor(a, dtype), to_tensor(b, dtype))
    gpu = frcnn_fast.box_iou(to_tensor(a, dtype, "cuda"), to_tensor(b, dtype, "cuda"))
    # both compute the same expressions from one shared header; allow a few ulps for FMA
    # contraction by nvcc
    check_close(to_np(gpu), to_np(cpu), 8 * eps(dtype), 8 * eps(dtype))


# ------------------------------------------------------------------ properties
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(pair=box_pairs())
def test_box_iou_properties(device, dtype, pair):
    a, b = pair
    t1, t2 = to_tensor(a, dtype, device), to_tensor(b, dtype, device)
    iou = to_np(frcnn_fast.box_iou(t1, t2))
    iou_t = to_np(frcnn_fast.box_iou(t2, t1))
    # symmetric
    check_close(iou, iou_t.T, 2 * eps(dtype), eps(dtype))
    # in [0, 1], never NaN
    assert np.all(np.isfinite(iou))
    assert np.all((iou >= 0) & (iou <= 1))
    # IoU(b, b) = 1 for every box of positive area (area of the dtype-rounded box)
    self_iou = to_np(frcnn_fast.box_iou(t1, t1))
    a_r = to_np(t1)
    positive = (a_r[:, 2] > a_r[:, 0]) & (a_r[:, 3] > a_r[:, 1])
    check_close(np.diag(self_iou)[positive], np.ones(positive.sum()), 0, eps(dtype))
    # an empty (zero-area or inverted) box has IoU 0 with everything, itself included
    assert np.all(np.diag(self_iou)[~positive] == 0)
    assert np.all(self_iou[~positive, :] == 0)
    # aligned == diagonal of pairwise
    k = min(len(a), len(b))
    aligned = to_np(frcnn_fast.box_iou_aligned(t1[:k], t2[:k]))
    check_close(aligned, np.diag(iou[:k, :k]), 2 * eps(dtype), eps(dtype))
    aligned_self = to_np(frcnn_fast.box_iou_aligned(t1, t1))
    check_close(aligned_self[positive], np.ones(positive.sum()), 0, eps(dtype))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_box_iou_zero_union_is_zero_not_nan(device, dtype):
    empty = [[1.0, 1.0, 1.0, 1.0], [3.0, 2.0, 3.0, 9.0], [5.0, 5.0, 2.0, 2.0], [0.0, 0.0, 4.0, 0.0]]
    t = to_tensor(empty, dtype, device)
    iou = frcnn_fast.box_iou(t, t)
    assert not torch.isnan(iou).any(), iou
    assert torch.equal(iou, torch.zeros(4, 4, dtype=dtype, device=device)), iou
    aligned = frcnn_fast.box_iou_aligned(t, t)
    assert torch.equal(aligned, torch.zeros(4, dtype=dtype, device=device)), aligned
    # an inverted box never "intersects" a real box that contains it
    real = to_tensor([[0.0, 0.0, 10.0, 10.0]], dtype, device)
    assert torch.equal(frcnn_fast.box_iou(t, real), torch.zeros(4, 1, dtype=dtype, device=device))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_box_iou_known_values(device, dtype):
    # hand-computed: unit overlap of two 2x2 boxes -> 1 / 7; touching boxes -> 0; contained -> 1/4
    a = to_tensor([[0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 4, 4]], dtype, device)
    b = to_tensor([[1, 1, 3, 3], [2, 0, 4, 2], [1, 1, 3, 3]], dtype, device)
    got = to_np(frcnn_fast.box_iou_aligned(a, b))
    check_close(got, [1 / 7, 0.0, 4 / 16], RTOL[dtype], ATOL[dtype])
    full = to_np(frcnn_fast.box_iou(a, b))
    check_close(np.diag(full), [1 / 7, 0.0, 4 / 16], RTOL[dtype], ATOL[dtype])


# ------------------------------------------------------------------ torchvision
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FULL)
@given(
    a=box_arrays(max_n=16, degenerate=False, min_size=0.125),
    b=box_arrays(max_n=16, degenerate=False, min_size=0.125),
)
def test_box_iou_matches_torchvision(device, dtype, a, b):
    # positive-area boxes only: torchvision returns NaN for union 0, frcnn_fast returns 0
    t1, t2 = to_tensor(a, dtype, device), to_tensor(b, dtype, device)
    ours = frcnn_fast.box_iou(t1, t2)
    theirs = torchvision.ops.box_iou(t1, t2)
    torch.testing.assert_close(ours, theirs, rtol=RTOL[dtype], atol=ATOL[dtype])
