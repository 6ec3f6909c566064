"""CUDA kernels == CPU kernels on the same inputs, NaN and infinities included.

Run against the emulated CUDA build (every ``make test``) and against the real device when a
GPU is visible. The kernel-vs-reference tests of the other files also run both through their
``device`` parameter; here the two backends are compared directly, bit for bit where the
arithmetic allows it, under several emulator schedules and launch caps so that every
grid-stride loop and every block order is exercised with small inputs.
"""

import cuda_emu
import numpy as np
import pytest
import torch
from helpers import (
    CUDA_BACKENDS,
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
from hypothesis import given
from hypothesis import strategies as st

import frcnn_fast

# The kernels themselves, whose output keeps the input's dtype (the wrappers return float32 for
# half-precision boxes, as torchvision does).
box_iou_op = torch.ops.frcnn_fast.box_iou
box_area_op = torch.ops.frcnn_fast.box_area

FORMATS = ("xyxy", "yxyx", "xywh", "cxcywh")
# Emulator settings each emulated comparison runs under: a few seeds, one and two worker
# threads, the GPU's grid cap and caps of 1 and 2 blocks (grid-stride loops on tiny inputs).
SCHEDULES = ((11, 2, 65535), (12, 1, 1), (13, 2, 2))


def run_cuda(backend, fn, *tensors):
    """``fn(*tensors)`` on the CUDA kernels, returned on the CPU. Emulated: under every schedule of
    SCHEDULES, which must agree bit for bit (a kernel's result may not depend on scheduling)."""
    if backend == "cuda":
        return fn(*(t.cuda() for t in tensors)).cpu()
    results = []
    for seed, workers, cap in SCHEDULES:
        with cuda_emu.emulated(seed=seed, workers=workers, max_grid_dim=cap):
            results.append(fn(*tensors))
    for other in results[1:]:
        torch.testing.assert_close(other, results[0], rtol=0, atol=0, equal_nan=True)
    return results[0]


def _identical(cpu, cuda, dtype):
    """Bit-identical: neither side contracts a*b+c into an FMA (setup.py: -ffp-contract=off,
    nvcc -fmad=false) and both round every IEEE step alike, so IoU, areas, conversions, clips
    and anchors must agree exactly (NMS's IoU > threshold depends on it)."""
    assert cpu.device.type == "cpu" and cuda.device.type == "cpu"
    assert cuda.dtype == cpu.dtype == dtype
    torch.testing.assert_close(cuda, cpu, rtol=0, atol=0, equal_nan=True)


NONFINITE = (float("nan"), float("inf"), -float("inf"))


@st.composite
def with_nonfinite(draw, boxes):
    """Some coordinates replaced by NaN, +inf or -inf (kernels must give what the CPU gives)."""
    b = np.array(boxes, dtype=np.float64)
    if b.size:
        for _ in range(draw(st.integers(0, min(4, b.size)))):
            i = draw(st.integers(0, b.size - 1))
            b.flat[i] = draw(st.sampled_from(NONFINITE))
    return b


@pytest.mark.parametrize("backend", CUDA_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@given(
    pair=box_pairs(max_n=24),
    data=st.data(),
    fmts=st.tuples(st.sampled_from(FORMATS), st.sampled_from(FORMATS)),
)
def test_box_ops_cuda_equals_cpu(backend, dtype, pair, data, fmts):
    a, b = data.draw(with_nonfinite(pair[0])), data.draw(with_nonfinite(pair[1]))
    ca, cb = to_tensor(a, dtype), to_tensor(b, dtype)
    k = min(len(a), len(b))
    _identical(box_iou_op(ca, cb), run_cuda(backend, box_iou_op, ca, cb), dtype)
    _identical(
        frcnn_fast.box_iou_aligned(ca[:k], cb[:k]),
        run_cuda(backend, frcnn_fast.box_iou_aligned, ca[:k], cb[:k]),
        dtype,
    )
    _identical(box_area_op(ca), run_cuda(backend, box_area_op, ca), dtype)
    convert = lambda t: frcnn_fast.box_convert(t, *fmts)  # noqa: E731
    _identical(convert(ca), run_cuda(backend, convert, ca), dtype)
    clip = lambda t: frcnn_fast.clip_boxes(t, (480, 640))  # noqa: E731
    _identical(clip(ca), run_cuda(backend, clip, ca), dtype)
    for m in (0.0, 1.0, 37.5):
        small = lambda t: frcnn_fast.remove_small_boxes(t, m)  # noqa: B023 (called at once)
        assert small(ca).tolist() == run_cuda(backend, small, ca).tolist()


@pytest.mark.parametrize("backend", CUDA_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), weights=WEIGHTS)
def test_box_coding_cuda_equals_cpu(backend, dtype, data, weights):
    lim, min_size = coding_limits(dtype)
    ref = data.draw(box_arrays(max_n=16, lim=lim, degenerate=False, min_size=min_size))
    tgt = data.draw(box_arrays(n=len(ref), lim=lim, degenerate=False, min_size=min_size))
    cr, ct = to_tensor(ref, dtype), to_tensor(tgt, dtype)
    enc = lambda r, t: frcnn_fast.encode_boxes(r, t, weights)  # noqa: E731
    enc_c, enc_g = enc(cr, ct), run_cuda(backend, enc, cr, ct)
    assert enc_g.dtype == dtype
    if backend == "cuda_emu":
        _identical(enc_c, enc_g, dtype)  # same libm: exact
    else:  # the device's log differs in the last bits
        check_close(
            to_np(enc_g),
            to_np(enc_c),
            8 * eps(dtype),
            encode_atol(to_np(cr), to_np(ct), weights, dtype),
        )
    deltas = torch.cat([enc_c, -0.5 * enc_c], dim=1)
    dec = lambda d, r: frcnn_fast.decode_boxes(d, r, weights)  # noqa: E731
    dec_c, dec_g = dec(deltas, cr), run_cuda(backend, dec, deltas, cr)
    assert dec_g.dtype == dtype
    if backend == "cuda_emu":
        _identical(dec_c, dec_g, dtype)
    else:
        check_close(
            to_np(dec_g),
            to_np(dec_c),
            8 * eps(dtype),
            decode_atol(to_np(deltas), to_np(cr), to_np(dec_c), dtype),
        )


@pytest.mark.parametrize("backend", CUDA_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_box_coding_nonfinite_cuda_equals_cpu(backend, dtype, data):
    """NaN and infinities pass through encoding and decoding as they do on the CPU."""
    ref = data.draw(with_nonfinite(data.draw(box_arrays(max_n=12, lim=500))))
    tgt = data.draw(with_nonfinite(data.draw(box_arrays(n=len(ref), lim=500))))
    cr, ct = to_tensor(ref, dtype), to_tensor(tgt, dtype)
    enc = lambda r, t: frcnn_fast.encode_boxes(r, t, (10.0, 10.0, 5.0, 5.0))  # noqa: E731
    dec = lambda d, r: frcnn_fast.decode_boxes(d, r, (10.0, 10.0, 5.0, 5.0))  # noqa: E731
    deltas = to_tensor(data.draw(with_nonfinite(np.clip(to_np(ct) / 100.0, -5, 5))), dtype)
    for fn, args in ((enc, (cr, ct)), (dec, (deltas, cr))):
        cpu, cuda = fn(*args), run_cuda(backend, fn, *args)
        assert torch.equal(torch.isnan(cpu), torch.isnan(cuda))
        assert torch.equal(torch.isinf(cpu), torch.isinf(cuda))
        if backend == "cuda_emu":
            _identical(cpu, cuda, dtype)


@pytest.mark.parametrize("backend", CUDA_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@given(
    fs=st.tuples(st.integers(0, 40), st.integers(0, 40)),
    stride=st.tuples(st.integers(1, 64), st.integers(1, 64)),
    offset=st.sampled_from([0.0, 0.5]),
)
def test_anchors_cuda_equals_cpu(backend, dtype, fs, stride, offset):
    def anchors(base):
        return frcnn_fast.generate_anchors(
            fs, stride, (32, 64, 128), (0.5, 1.0, 2.0), offset, dtype=dtype, device=base.device
        )

    base = torch.empty(0)
    _identical(anchors(base), run_cuda(backend, anchors, base), dtype)


def _large_boxes(n, seed):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=gen) * 1000
    return torch.cat([xy, xy + torch.rand(n, 2, generator=gen) * 200], dim=1)


# -------------------------------------------------------------------- past the grid caps
# On a GPU the caps are 65,535 blocks, so only huge inputs pass them; the emulated build lowers
# them to 1-3 blocks, so every op's grid-stride loop runs on small inputs (and in all dtypes).
CAPS = (1, 2, 3)


@pytest.mark.cuda_emu
@pytest.mark.parametrize("cap", CAPS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_op_past_lowered_grid_caps(cap, dtype):
    a = _large_boxes(3000, 1).to(dtype)  # 12 blocks of 256: past every cap
    b = _large_boxes(70, 2).to(dtype)  # 3 column blocks of 32 and 9 row blocks of 8 in box_iou
    deltas = torch.randn(3000, 8, generator=torch.Generator().manual_seed(3)).to(dtype)
    ops = {
        "box_iou": (lambda x, y: frcnn_fast.box_iou(x, y), (b, a[:90])),
        "box_iou_aligned": (frcnn_fast.box_iou_aligned, (a, a.flip(0))),
        "box_area": (frcnn_fast.box_area, (a,)),
        "box_convert": (lambda x: frcnn_fast.box_convert(x, "xyxy", "cxcywh"), (a,)),
        "clip_boxes": (lambda x: frcnn_fast.clip_boxes(x, (600, 800)), (a,)),
        "remove_small_boxes": (lambda x: frcnn_fast.remove_small_boxes(x, 100.0), (a,)),
        "encode_boxes": (
            lambda x, y: frcnn_fast.encode_boxes(x, y, (10, 10, 5, 5)),
            (a, a.flip(0)),
        ),
        "decode_boxes": (lambda d, x: frcnn_fast.decode_boxes(d, x, (10, 10, 5, 5)), (deltas, a)),
        "grid_anchors": (
            lambda x: frcnn_fast.generate_anchors((37, 29), 16, dtype=dtype, device=x.device),
            (a,),
        ),
    }
    ext = cuda_emu.load()
    for name, (fn, args) in ops.items():
        before = ext.stats()["launches"]
        with cuda_emu.emulated(seed=cap, workers=2, max_grid_dim=cap):
            emulated = fn(*args)
        assert ext.stats()["launches"] > before, f"{name} launched no emulated kernel"
        torch.testing.assert_close(emulated, fn(*args), rtol=0, atol=0, equal_nan=True, msg=name)


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="no GPU")
@pytest.mark.parametrize(
    "n,m",
    [
        (600_000, 3),  # more row blocks than gridDim.y's 65,535 (blocks of 8 rows)
        (2, 2_200_000),  # more column blocks than the 65,535 cap (blocks of 32 columns)
    ],
)
def test_box_iou_past_the_grid_caps(n, m):
    a, b = _large_boxes(n, 1), _large_boxes(m, 2)
    _identical(
        frcnn_fast.box_iou(a, b), frcnn_fast.box_iou(a.cuda(), b.cuda()).cpu(), torch.float32
    )


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="no GPU")
def test_elementwise_ops_past_the_grid_cap():
    # 17M boxes: more than blocks_for's 65,535 blocks of 256 threads, so the grid-stride loop
    # must cover the rest.
    boxes = _large_boxes(17_000_000, 3)
    gpu = boxes.cuda()
    _identical(frcnn_fast.box_area(boxes), frcnn_fast.box_area(gpu).cpu(), torch.float32)
    _identical(
        frcnn_fast.clip_boxes(boxes, (600, 800)),
        frcnn_fast.clip_boxes(gpu, (600, 800)).cpu(),
        torch.float32,
    )
