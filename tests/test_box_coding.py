"""encode_boxes / decode_boxes: kernel vs reference, round trip, per-class decoding, clamp,
torchvision's BoxCoder."""

import math

import numpy as np
import pytest
import torch
from helpers import (
    ATOL,
    DEVICES,
    DTYPES,
    FULL,
    LAYOUTS,
    RTOL,
    WEIGHTS,
    box_arrays,
    box_sizes,
    check_close,
    check_result_tensor,
    coding_limits,
    decode_atol,
    encode_atol,
    eps,
    to_np,
    to_tensor,
)
from hypothesis import given
from hypothesis import strategies as st
from torchvision.models.detection._utils import BoxCoder

import frcnn_fast
import frcnn_fast.reference as R

DEFAULT_CLAMP = math.log(1000.0 / 16)


@st.composite
def coding_inputs(draw, dtype):
    lim, min_size = coding_limits(dtype)
    ref = draw(box_arrays(max_n=16, lim=lim, degenerate=False, min_size=min_size))
    tgt = draw(box_arrays(n=len(ref), lim=lim, degenerate=False, min_size=min_size))
    if len(ref) and draw(st.booleans()):
        tgt[::3] = ref[::3]  # zero deltas
    return ref, tgt


@st.composite
def decode_inputs(draw, dtype, max_k=3):
    lim, min_size = coding_limits(dtype)
    if dtype == torch.float16:
        lim = 100  # exp(clamp) * width must stay below float16's 65504
    ref = draw(box_arrays(max_n=12, lim=lim, degenerate=False, min_size=min_size))
    k = draw(st.integers(1, max_k))
    weights = draw(WEIGHTS)
    n = len(ref)
    # deltas / weights in [-3, 3] for centres and [-4, 5.5] for sizes (beyond the default clamp)
    unit = st.floats(-1, 1, allow_subnormal=False).map(lambda v: round(v, 4))
    raw = np.asarray(draw(st.lists(unit, min_size=n * 4 * k, max_size=n * 4 * k)), dtype=np.float64)
    d = raw.reshape(n, k, 4)
    w = np.asarray(weights)
    d[..., :2] = d[..., :2] * 3 * w[:2]
    d[..., 2:] = (0.75 + d[..., 2:] * 4.75) * w[2:]
    return d.reshape(n, 4 * k), ref, weights


# ------------------------------------------------------------------ encode
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(
    data=st.data(),
    weights=WEIGHTS,
    layouts=st.tuples(st.sampled_from(LAYOUTS), st.sampled_from(LAYOUTS)),
)
def test_encode_matches_reference(device, dtype, data, weights, layouts):
    ref, tgt = data.draw(coding_inputs(dtype))
    tr = to_tensor(ref, dtype, device, layouts[0])
    tt = to_tensor(tgt, dtype, device, layouts[1])
    out = frcnn_fast.encode_boxes(tr, tt, weights)
    check_result_tensor(out, dtype, device, ref.shape)
    r, t = to_np(tr), to_np(tt)
    expected = R.encode_boxes(r, t, weights)
    atol = encode_atol(r, t, weights, dtype)
    check_close(to_np(out), expected, RTOL[dtype], atol, ref=r, tgt=t, weights=weights)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), lead=st.sampled_from([(2,), (3, 1)]))
def test_encode_batched_shapes(device, dtype, data, lead):
    ref, tgt = data.draw(coding_inputs(dtype))
    ref = np.broadcast_to(ref, (*lead, *ref.shape)).copy()
    tgt = np.broadcast_to(tgt, (*lead, *tgt.shape)).copy()
    tr, tt = to_tensor(ref, dtype, device, "transposed"), to_tensor(tgt, dtype, device)
    out = frcnn_fast.encode_boxes(tr, tt, (10.0, 10.0, 5.0, 5.0))
    check_result_tensor(out, dtype, device, ref.shape)
    r, t = to_np(tr), to_np(tt)
    expected = R.encode_boxes(r, t, (10.0, 10.0, 5.0, 5.0))
    check_close(to_np(out), expected, RTOL[dtype], encode_atol(r, t, (10, 10, 5, 5), dtype))


# ------------------------------------------------------------------ decode
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(
    data=st.data(),
    clamp=st.one_of(st.none(), st.sampled_from([1.0, 3.0, 10.0])),
    layouts=st.tuples(st.sampled_from(LAYOUTS), st.sampled_from(LAYOUTS)),
)
def test_decode_matches_reference(device, dtype, data, clamp, layouts):
    deltas, ref, weights = data.draw(decode_inputs(dtype))
    td = to_tensor(deltas, dtype, device, layouts[0])
    tr = to_tensor(ref, dtype, device, layouts[1])
    if clamp is None:  # the default clamp is log(1000 / 16)
        out = frcnn_fast.decode_boxes(td, tr, weights)
        clamp = DEFAULT_CLAMP
    else:
        out = frcnn_fast.decode_boxes(td, tr, weights, clamp)
    check_result_tensor(out, dtype, device, deltas.shape)
    d, r = to_np(td), to_np(tr)
    expected = R.decode_boxes(d, r, weights, clamp)
    atol = decode_atol(d, r, expected, dtype)
    inputs = {"deltas": d, "ref": r, "weights": weights, "clamp": clamp}
    check_close(to_np(out), expected, RTOL[dtype], atol, **inputs)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_decode_multiclass_equals_per_class(device, dtype, data):
    deltas, ref, weights = data.draw(decode_inputs(dtype, max_k=4))
    td, tr = to_tensor(deltas, dtype, device), to_tensor(ref, dtype, device)
    full = frcnn_fast.decode_boxes(td, tr, weights)
    k = deltas.shape[1] // 4
    for c in range(k):
        single = frcnn_fast.decode_boxes(td[:, 4 * c : 4 * c + 4], tr, weights)  # a column slice
        check_result_tensor(single, dtype, device, (len(ref), 4))
        e = to_np(single)
        check_close(
            to_np(full[:, 4 * c : 4 * c + 4]),
            e,
            2 * eps(dtype),
            decode_atol(to_np(td[:, 4 * c : 4 * c + 4]), to_np(tr), e, dtype),
        )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("clamp", [DEFAULT_CLAMP, 2.0, 0.5])
def test_decode_clamp_caps_dw_dh(device, dtype, clamp):
    weights = (10.0, 10.0, 5.0, 5.0)
    ref = to_tensor([[10.0, 20.0, 42.0, 36.0], [0.0, 0.0, 8.0, 8.0]], dtype, device)
    rw = torch.tensor([32.0, 8.0], dtype=torch.float64)
    rh = torch.tensor([16.0, 8.0], dtype=torch.float64)
    big = to_tensor([[0.0, 0.0, 500.0, 80.0], [0.0, 0.0, 1e4, 1e4]], dtype, device)
    at_clamp = to_tensor([[0.0, 0.0, 5 * clamp, 5 * clamp]] * 2, dtype, device)
    out = frcnn_fast.decode_boxes(big, ref, weights, clamp)
    assert torch.isfinite(out).all(), out
    w_out, h_out = box_sizes(to_np(out))
    # dw / ww and dh / wh above the clamp give exactly exp(clamp) * width
    check_close(w_out, np.exp(clamp) * rw.numpy(), RTOL[dtype] * 2, 0)
    check_close(h_out, np.exp(clamp) * rh.numpy(), RTOL[dtype] * 2, 0)
    # ... which is what a delta sitting right at the clamp gives (5 * clamp is not exactly
    # representable in the half types, so only for float32/float64)
    if dtype in (torch.float32, torch.float64):
        check_close(
            to_np(out),
            to_np(frcnn_fast.decode_boxes(at_clamp, ref, weights, clamp)),
            RTOL[dtype],
            ATOL[dtype],
        )
    # the clamp caps from above only: large negative dw shrinks the box toward its centre
    shrink = frcnn_fast.decode_boxes(
        to_tensor([[0.0, 0.0, -100.0, -100.0]] * 2, dtype, device), ref, weights, clamp
    )
    w_s, h_s = box_sizes(to_np(shrink))
    assert np.all(w_s < 1e-3) and np.all(h_s < 1e-3)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_coding_empty(device, dtype):
    empty = torch.zeros(0, 4, dtype=dtype, device=device)
    check_result_tensor(frcnn_fast.encode_boxes(empty, empty), dtype, device, (0, 4))
    check_result_tensor(frcnn_fast.decode_boxes(empty, empty), dtype, device, (0, 4))
    deltas = torch.zeros(0, 12, dtype=dtype, device=device)
    check_result_tensor(
        frcnn_fast.decode_boxes(deltas, empty, (10.0, 10.0, 5.0, 5.0)), dtype, device, (0, 12)
    )


# ------------------------------------------------------------------ round trip
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), weights=WEIGHTS)
def test_decode_encode_round_trip(device, dtype, data, weights):
    ref, tgt = data.draw(coding_inputs(dtype))
    tr, tt = to_tensor(ref, dtype, device), to_tensor(tgt, dtype, device)
    deltas = frcnn_fast.encode_boxes(tr, tt, weights)
    # clamp well above any log size ratio here (|log(2000 / 1)| < 8): no capping
    back = frcnn_fast.decode_boxes(deltas, tr, weights, 10.0)
    r, t = to_np(tr), to_np(tt)
    # the deltas are rounded to the dtype in between: error ~ eps(dtype) * magnitude
    mag = np.abs(r).max(-1, keepdims=True) + np.abs(t).max(-1, keepdims=True) if len(r) else 0.0
    check_close(
        to_np(back), t, 0, 16 * eps(dtype) * mag + ATOL[dtype], ref=r, tgt=t, weights=weights
    )


# ------------------------------------------------------------------ torchvision
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FULL)
@given(data=st.data(), weights=WEIGHTS)
def test_encode_matches_torchvision(device, dtype, data, weights):
    ref, tgt = data.draw(coding_inputs(dtype))
    tr, tt = to_tensor(ref, dtype, device), to_tensor(tgt, dtype, device)
    # torchvision's argument order is (targets, proposals/anchors)
    theirs = BoxCoder(tuple(weights)).encode_single(tt, tr)
    ours = frcnn_fast.encode_boxes(tr, tt, weights)
    check_close(to_np(ours), to_np(theirs), RTOL[dtype], encode_atol(ref, tgt, weights, dtype))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FULL)
@given(data=st.data())
def test_decode_matches_torchvision(device, dtype, data):
    deltas, ref, weights = data.draw(decode_inputs(dtype))
    td, tr = to_tensor(deltas, dtype, device), to_tensor(ref, dtype, device)
    ours = frcnn_fast.decode_boxes(td, tr, weights)
    theirs = BoxCoder(tuple(weights)).decode_single(td, tr)
    e = to_np(theirs)
    check_close(to_np(ours), e, RTOL[dtype], decode_atol(deltas, ref, e, dtype))
