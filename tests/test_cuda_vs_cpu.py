"""CUDA kernels == CPU kernels on the same inputs (the kernel-vs-reference tests of the other
files already run on CUDA through their ``device`` parameter). Skipped only without a GPU."""
import pytest
import torch
from hypothesis import given, strategies as st

import frcnn_fast
from helpers import (
    DTYPES,
    HAS_CUDA,
    WEIGHTS,
    box_arrays,
    box_pairs,
    check_close,
    coding_limits,
    decode_atol,
    encode_atol,
    eps,
    to_np,
    to_tensor,
)

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="no GPU")]

FORMATS = ("xyxy", "yxyx", "xywh", "cxcywh")


def _identical(cpu, gpu, dtype):
    """Bit-identical: neither side contracts a*b+c into an FMA (setup.py: -ffp-contract=off,
    nvcc -fmad=false) and both round every IEEE step alike, so IoU, areas, conversions, clips
    and anchors must agree exactly (NMS's IoU > threshold depends on it)."""
    assert gpu.device.type == "cuda" and cpu.device.type == "cpu"
    assert gpu.dtype == cpu.dtype == dtype
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("dtype", DTYPES)
@given(pair=box_pairs(max_n=24), fmts=st.tuples(st.sampled_from(FORMATS), st.sampled_from(FORMATS)))
def test_box_ops_cuda_equals_cpu(dtype, pair, fmts):
    a, b = pair
    ca, cb = to_tensor(a, dtype), to_tensor(b, dtype)
    ga, gb = ca.cuda(), cb.cuda()
    _identical(frcnn_fast.box_iou(ca, cb), frcnn_fast.box_iou(ga, gb), dtype)
    k = min(len(a), len(b))
    _identical(frcnn_fast.box_iou_aligned(ca[:k], cb[:k]), frcnn_fast.box_iou_aligned(ga[:k], gb[:k]), dtype)
    _identical(frcnn_fast.box_area(ca), frcnn_fast.box_area(ga), dtype)
    _identical(frcnn_fast.box_convert(ca, *fmts), frcnn_fast.box_convert(ga, *fmts), dtype)
    _identical(frcnn_fast.clip_boxes(ca, (480, 640)), frcnn_fast.clip_boxes(ga, (480, 640)), dtype)
    for m in (0.0, 1.0, 37.5):
        assert frcnn_fast.remove_small_boxes(ca, m).tolist() == frcnn_fast.remove_small_boxes(ga, m).cpu().tolist()


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), weights=WEIGHTS)
def test_box_coding_cuda_equals_cpu(dtype, data, weights):
    lim, min_size = coding_limits(dtype)
    ref = data.draw(box_arrays(max_n=16, lim=lim, degenerate=False, min_size=min_size))
    tgt = data.draw(box_arrays(n=len(ref), lim=lim, degenerate=False, min_size=min_size))
    cr, ct = to_tensor(ref, dtype), to_tensor(tgt, dtype)
    enc_c = frcnn_fast.encode_boxes(cr, ct, weights)
    enc_g = frcnn_fast.encode_boxes(cr.cuda(), ct.cuda(), weights)
    assert enc_g.device.type == "cuda" and enc_g.dtype == dtype
    check_close(to_np(enc_g), to_np(enc_c), 8 * eps(dtype), encode_atol(to_np(cr), to_np(ct), weights, dtype))
    deltas = torch.cat([enc_c, -0.5 * enc_c], dim=1)
    dec_c = frcnn_fast.decode_boxes(deltas, cr, weights)
    dec_g = frcnn_fast.decode_boxes(deltas.cuda(), cr.cuda(), weights)
    assert dec_g.device.type == "cuda" and dec_g.dtype == dtype
    check_close(to_np(dec_g), to_np(dec_c), 8 * eps(dtype), decode_atol(to_np(deltas), to_np(cr), to_np(dec_c), dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@given(
    fs=st.tuples(st.integers(0, 40), st.integers(0, 40)),
    stride=st.tuples(st.integers(1, 64), st.integers(1, 64)),
    offset=st.sampled_from([0.0, 0.5]),
)
def test_anchors_cuda_equals_cpu(dtype, fs, stride, offset):
    c = frcnn_fast.generate_anchors(fs, stride, (32, 64, 128), (0.5, 1.0, 2.0), offset, dtype=dtype)
    g = frcnn_fast.generate_anchors(fs, stride, (32, 64, 128), (0.5, 1.0, 2.0), offset, dtype=dtype, device="cuda")
    _identical(c, g, dtype)


def _large_boxes(n, seed):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=gen) * 1000
    return torch.cat([xy, xy + torch.rand(n, 2, generator=gen) * 200], dim=1)


@pytest.mark.parametrize(
    "n,m",
    [
        (600_000, 3),  # more row blocks than gridDim.y's 65,535 (blocks of 8 rows)
        (2, 2_200_000),  # more column blocks than the 65,536 cap (blocks of 32 columns)
    ],
)
def test_box_iou_past_the_grid_caps(n, m):
    a, b = _large_boxes(n, 1), _large_boxes(m, 2)
    _identical(frcnn_fast.box_iou(a, b), frcnn_fast.box_iou(a.cuda(), b.cuda()), torch.float32)


def test_elementwise_ops_past_the_grid_cap():
    # 17M boxes: more than blocks_for's 65,536 blocks of 256 threads, so the grid-stride loop
    # must cover the rest.
    boxes = _large_boxes(17_000_000, 3)
    gpu = boxes.cuda()
    _identical(frcnn_fast.box_area(boxes), frcnn_fast.box_area(gpu), torch.float32)
    _identical(frcnn_fast.clip_boxes(boxes, (600, 800)), frcnn_fast.clip_boxes(gpu, (600, 800)), torch.float32)
