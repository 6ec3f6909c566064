"""box_area, box_convert, clip_boxes, remove_small_boxes: kernel vs reference, properties,
torchvision."""

import itertools

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
    check_close,
    check_result_tensor,
    compute_eps,
    eps,
    random_boxes,
    to_np,
    to_tensor,
)
from hypothesis import given
from hypothesis import strategies as st

import frcnn_fast
import frcnn_fast.reference as R

FORMATS = ("xyxy", "yxyx", "xywh", "cxcywh")
TV_FORMATS = ("xyxy", "xywh", "cxcywh")
LEADS = st.sampled_from([(), (2,), (1, 3)])


def _lead(arr, lead):
    """``arr[N, 4]`` -> ``[*lead, N, 4]`` (tiled), to exercise the ``[..., 4]`` signatures."""
    return np.broadcast_to(arr, (*lead, *arr.shape)).copy() if lead else arr


def _area_lim(dtype):
    # float16 tops out at 65504: keep areas representable
    return 100 if dtype == torch.float16 else 1000


# ================================================================== box_area
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), layout=st.sampled_from(LAYOUTS), lead=LEADS)
def test_box_area_matches_reference(device, dtype, data, layout, lead):
    boxes = _lead(data.draw(box_arrays(lim=_area_lim(dtype) // 2)), lead)
    t = to_tensor(boxes, dtype, device, layout)
    out = torch.ops.frcnn_fast.box_area(t)
    check_result_tensor(out, dtype, device, boxes.shape[:-1])
    expected = R.box_area(to_np(t))
    check_close(to_np(out), expected, RTOL[dtype], ATOL[dtype], boxes=to_np(t))
    assert np.all(to_np(out) >= 0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_box_area_degenerate_and_empty(device, dtype):
    boxes = to_tensor(
        [[0, 0, 4, 3], [5, 5, 1, 1], [5, 5, 1, 9], [2, 2, 2, 7], [1, 1, 1, 1]], dtype, device
    )
    # the doubly inverted box has area 0, not (-4) * (-4) = 16
    expected = torch.tensor([12.0, 0.0, 0.0, 0.0, 0.0], dtype=dtype, device=device)
    assert torch.equal(torch.ops.frcnn_fast.box_area(boxes), expected)
    empty = torch.ops.frcnn_fast.box_area(boxes[:0])
    check_result_tensor(empty, dtype, device, (0,))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FULL)
@given(boxes=box_arrays(degenerate=False, min_size=0.125))
def test_box_area_matches_torchvision(device, dtype, boxes):
    t = to_tensor(boxes, dtype, device)
    torch.testing.assert_close(
        frcnn_fast.box_area(t), torchvision.ops.box_area(t), rtol=RTOL[dtype], atol=ATOL[dtype]
    )


# ================================================================== box_convert
def _convert_tol(inputs, expected, dtype, k=8):
    """Absolute tolerance: arithmetic error ~ eps * (row magnitude) plus output rounding."""
    mag = (
        np.abs(inputs).max(axis=-1, keepdims=True)
        if inputs.size
        else np.zeros(inputs.shape[:-1] + (1,))
    )
    return k * compute_eps(dtype) * mag + ATOL[dtype]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(
    data=st.data(),
    fmts=st.tuples(st.sampled_from(FORMATS), st.sampled_from(FORMATS)),
    layout=st.sampled_from(LAYOUTS),
    lead=LEADS,
)
def test_box_convert_matches_reference(device, dtype, data, fmts, layout, lead):
    in_fmt, out_fmt = fmts
    # any 4 numbers are a valid box in every format (negative w/h included)
    boxes = _lead(data.draw(box_arrays()), lead)
    t = to_tensor(boxes, dtype, device, layout)
    out = frcnn_fast.box_convert(t, in_fmt, out_fmt)
    check_result_tensor(out, dtype, device, boxes.shape)
    x = to_np(t)
    expected = R.box_convert(x, in_fmt, out_fmt)
    check_close(
        to_np(out), expected, RTOL[dtype], _convert_tol(x, expected, dtype), boxes=x, fmts=fmts
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(boxes=box_arrays(), fmts=st.tuples(st.sampled_from(FORMATS), st.sampled_from(FORMATS)))
def test_box_convert_round_trip(device, dtype, boxes, fmts):
    a, b = fmts
    t = to_tensor(boxes, dtype, device)
    back = frcnn_fast.box_convert(frcnn_fast.box_convert(t, a, b), b, a)
    x = to_np(t)
    # the intermediate is rounded to the dtype: error ~ eps(dtype) * magnitude
    mag = np.abs(x).max(axis=-1, keepdims=True) if len(x) else 0.0
    check_close(to_np(back), x, 0, 8 * eps(dtype) * mag + ATOL[dtype], boxes=x, fmts=fmts)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_box_convert_permutations_and_identity(device, dtype):
    rng = np.random.default_rng(3)
    t = to_tensor(random_boxes(rng, 50), dtype, device, "column_slice")
    # yxyx is a pure permutation of xyxy: exact
    assert torch.equal(frcnn_fast.box_convert(t, "xyxy", "yxyx"), t[:, [1, 0, 3, 2]])
    assert torch.equal(frcnn_fast.box_convert(t, "yxyx", "xyxy"), t[:, [1, 0, 3, 2]])
    for fmt in FORMATS:
        assert torch.equal(frcnn_fast.box_convert(t, fmt, fmt), t)
    for a, b in itertools.product(FORMATS, FORMATS):
        check_result_tensor(frcnn_fast.box_convert(t[:0], a, b), dtype, device, (0, 4))
    # a hand-made xyxy box in the other formats
    box = to_tensor([[2.0, 4.0, 10.0, 8.0]], dtype, device)
    want = {
        "xywh": [2.0, 4.0, 8.0, 4.0],
        "cxcywh": [6.0, 6.0, 8.0, 4.0],
        "yxyx": [4.0, 2.0, 8.0, 10.0],
    }
    for fmt, v in want.items():
        assert frcnn_fast.box_convert(box, "xyxy", fmt).tolist() == [v], fmt


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FULL)
@given(boxes=box_arrays(), fmts=st.tuples(st.sampled_from(TV_FORMATS), st.sampled_from(TV_FORMATS)))
def test_box_convert_matches_torchvision(device, dtype, boxes, fmts):
    t = to_tensor(boxes, dtype, device)
    ours = frcnn_fast.box_convert(t, *fmts)
    theirs = torchvision.ops.box_convert(t, *fmts)
    x = to_np(t)
    check_close(
        to_np(ours), to_np(theirs), RTOL[dtype], _convert_tol(x, x, dtype), boxes=x, fmts=fmts
    )


# ================================================================== clip_boxes
IMAGE_SIDE = st.one_of(
    st.integers(0, 1500).map(float), st.floats(0.5, 1500).map(lambda v: round(v, 2))
)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(
    boxes=box_arrays(lim=1200),
    size=st.tuples(IMAGE_SIDE, IMAGE_SIDE),
    layout=st.sampled_from(LAYOUTS),
    lead=LEADS,
)
def test_clip_boxes_matches_reference(device, dtype, boxes, size, layout, lead):
    boxes = _lead(boxes, lead)
    t = to_tensor(boxes, dtype, device, layout)
    out = frcnn_fast.clip_boxes(t, size)
    check_result_tensor(out, dtype, device, boxes.shape)
    expected = R.clip_boxes(to_np(t), size)
    # exact up to the rounding of (height, width) to the dtype
    check_close(to_np(out), expected, RTOL[dtype], 0.0, boxes=to_np(t), size=size)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FULL)
@given(boxes=box_arrays(lim=1200), size=st.tuples(st.integers(0, 1500), st.integers(0, 1500)))
def test_clip_boxes_inside_image(device, dtype, boxes, size):
    h, w = size
    t = to_tensor(boxes, dtype, device)
    out = to_np(frcnn_fast.clip_boxes(t, (h, w)))
    x = to_np(t)
    assert np.all((out[:, 0::2] >= 0) & (out[:, 0::2] <= w))
    assert np.all((out[:, 1::2] >= 0) & (out[:, 1::2] <= h))
    # coordinates already inside are untouched
    inside = np.zeros_like(x, dtype=bool)
    inside[:, 0::2] = (x[:, 0::2] >= 0) & (x[:, 0::2] <= w)
    inside[:, 1::2] = (x[:, 1::2] >= 0) & (x[:, 1::2] <= h)
    assert np.array_equal(out[inside], x[inside])
    # torchvision's clip_boxes_to_image does the same clamps: bitwise equal
    assert torch.equal(
        frcnn_fast.clip_boxes(t, (h, w)), torchvision.ops.clip_boxes_to_image(t, (h, w))
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_boxes_height_width_order(device, dtype):
    # size is (height, width): x is clamped by width, y by height
    t = to_tensor([[-5.0, -5.0, 500.0, 500.0]], dtype, device)
    out = frcnn_fast.clip_boxes(t, (100, 300))
    assert out.tolist() == [[0.0, 0.0, 300.0, 100.0]]
    check_result_tensor(frcnn_fast.clip_boxes(t[:0], (100, 300)), dtype, device, (0, 4))


# ================================================================== remove_small_boxes
@st.composite
def boxes_and_min_size(draw):
    # grid coordinates: x2 - x1 is exact in float32 and float64, so the ">=" boundary is exact
    boxes = draw(box_arrays(max_n=24, grid=True, lim=500, max_size=64))
    sides = np.concatenate([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]])
    choices = [st.just(0.0), st.integers(0, 8 * 80).map(lambda k: k / 8)]
    positive = sides[sides > 0]
    if len(positive):
        # a min_size equal to an existing width/height: tests that ">=" is inclusive
        choices.append(st.sampled_from(sorted(set(positive.tolist()))))
    return boxes, draw(st.one_of(*choices))


def _check_keep(keep, device, n):
    assert keep.dtype == torch.int64, keep.dtype
    assert keep.device.type == torch.device(device).type
    assert keep.dim() == 1
    k = keep.cpu()
    assert torch.all(k[1:] > k[:-1]), f"indices not strictly ascending: {k}"
    assert torch.all((k >= 0) & (k < n)) if len(k) else True


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(bm=boxes_and_min_size(), layout=st.sampled_from(LAYOUTS))
def test_remove_small_boxes_matches_reference(device, dtype, bm, layout):
    boxes, min_size = bm
    t = to_tensor(boxes, dtype, device, layout)
    keep = frcnn_fast.remove_small_boxes(t, min_size)
    _check_keep(keep, device, len(boxes))
    x = to_np(t)
    expected = R.remove_small_boxes(x, min_size)
    assert expected.dtype == np.int64
    assert keep.cpu().tolist() == expected.tolist(), (x, min_size)
    # the definition, spelled out: keep exactly the boxes with w >= min and h >= min
    w, h = x[:, 2] - x[:, 0], x[:, 3] - x[:, 1]
    assert keep.cpu().tolist() == np.flatnonzero((w >= min_size) & (h >= min_size)).tolist()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FULL)
@given(bm=boxes_and_min_size())
def test_remove_small_boxes_matches_torchvision(device, dtype, bm):
    boxes, min_size = bm
    t = to_tensor(boxes, dtype, device)
    assert torch.equal(
        frcnn_fast.remove_small_boxes(t, min_size), torchvision.ops.remove_small_boxes(t, min_size)
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_remove_small_boxes_edge_cases(device, dtype):
    t = to_tensor(
        [[0, 0, 4, 4], [0, 0, 4, 3.5], [0, 0, 3.5, 4], [10, 10, 20, 20], [5, 5, 1, 1]],
        dtype,
        device,
    )
    assert frcnn_fast.remove_small_boxes(t, 4.0).tolist() == [0, 3]  # ">=" keeps w == min
    assert frcnn_fast.remove_small_boxes(t, 100.0).tolist() == []
    keep = frcnn_fast.remove_small_boxes(t[:0], 1.0)
    _check_keep(keep, device, 0)
    assert keep.shape == (0,)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_remove_small_boxes_large(device, dtype):
    rng = np.random.default_rng(11)
    boxes = random_boxes(rng, 5000, lim=500)
    t = to_tensor(boxes, dtype, device, "stride2")
    keep = frcnn_fast.remove_small_boxes(t, 40.0)
    _check_keep(keep, device, 5000)
    assert keep.cpu().tolist() == R.remove_small_boxes(to_np(t), 40.0).tolist()
