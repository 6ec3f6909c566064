"""CUDA kernels == CPU kernels on the same inputs (the kernel-vs-reference tests of the other
files already run on CUDA through their ``device`` parameter). Skipped only without a GPU."""
import numpy as np
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
    compute_eps,
    eps,
    to_np,
    to_tensor,
)

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="no GPU")]

FORMATS = ("xyxy", "yxyx", "xywh", "cxcywh")


def _same(cpu, gpu, dtype, mag=0.0):
    """Equal up to a few ulps (nvcc may contract a*b+c into an FMA) plus arithmetic error."""
    assert gpu.device.type == "cuda" and cpu.device.type == "cpu"
    assert gpu.dtype == cpu.dtype == dtype
    check_close(to_np(gpu), to_np(cpu), 8 * eps(dtype), 16 * compute_eps(dtype) * mag + 1e-3 * eps(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@given(pair=box_pairs(max_n=24), fmts=st.tuples(st.sampled_from(FORMATS), st.sampled_from(FORMATS)))
def test_box_ops_cuda_equals_cpu(dtype, pair, fmts):
    a, b = pair
    ca, cb = to_tensor(a, dtype), to_tensor(b, dtype)
    ga, gb = ca.cuda(), cb.cuda()
    _same(frcnn_fast.box_iou(ca, cb), frcnn_fast.box_iou(ga, gb), dtype)
    k = min(len(a), len(b))
    _same(frcnn_fast.box_iou_aligned(ca[:k], cb[:k]), frcnn_fast.box_iou_aligned(ga[:k], gb[:k]), dtype)
    mag = np.abs(to_np(ca)).max(-1, keepdims=True) if len(a) else 0.0
    _same(frcnn_fast.box_area(ca), frcnn_fast.box_area(ga), dtype, mag[..., 0] ** 2 if len(a) else 0.0)
    _same(frcnn_fast.box_convert(ca, *fmts), frcnn_fast.box_convert(ga, *fmts), dtype, mag)
    _same(frcnn_fast.clip_boxes(ca, (480, 640)), frcnn_fast.clip_boxes(ga, (480, 640)), dtype)
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
    mag = np.abs(to_np(c)).max(-1, keepdims=True) + 200 if len(c) else 0.0
    _same(c, g, dtype, mag)
