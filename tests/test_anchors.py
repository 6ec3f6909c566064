"""Anchors: golden vectors, kernel vs reference, row-major order, multi-level, anchors_inside,
AnchorGenerator vs torchvision's."""

import numpy as np
import pytest
import torch
from helpers import (
    ATOL,
    DEVICES,
    DTYPES,
    FULL,
    RTOL,
    SEED_RATIOS,
    SEED_SIZES,
    box_arrays,
    check_close,
    check_result_tensor,
    compute_eps,
    eps,
    seed_nine,
    to_np,
    to_tensor,
)
from hypothesis import given
from hypothesis import strategies as st
from torchvision.models.detection.anchor_utils import AnchorGenerator as TVAnchorGenerator
from torchvision.models.detection.image_list import ImageList

import frcnn_fast
import frcnn_fast.reference as R


# ------------------------------------------------------------------ golden vectors
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FULL)
def test_golden_base_anchors(device, dtype):
    nine = seed_nine()
    anchors = frcnn_fast.generate_anchors(
        (1, 1), 16, SEED_SIZES, SEED_RATIOS, 0.5, dtype=dtype, device=device
    )
    check_result_tensor(anchors, dtype, device, (9, 4))
    got = to_np(anchors)
    check_close(got, nine, RTOL[dtype], 1e-4)
    # the literal golden vectors of docs/CONVENTIONS.md
    check_close(got[0], [-82.50967, -37.254833, 98.50967, 53.254833], 0, 1e-4)
    check_close(got[4], [-120.0, -120.0, 136.0, 136.0], 0, 1e-5)
    # the default arguments are the tutorial configuration
    assert torch.equal(frcnn_fast.generate_anchors((1, 1), 16, dtype=dtype, device=device), anchors)
    base = frcnn_fast.base_anchors(SEED_SIZES, SEED_RATIOS, dtype=dtype, device=device)
    check_result_tensor(base, dtype, device, (9, 4))
    check_close(to_np(base), seed_nine(0.0), RTOL[dtype], 1e-4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FULL)
def test_golden_50x50_map(device, dtype):
    anchors = frcnn_fast.generate_anchors((50, 50), 16, dtype=dtype, device=device)
    check_result_tensor(anchors, dtype, device, (22500, 4))
    inside = frcnn_fast.anchors_inside(anchors, (800, 800))
    assert inside.dtype == torch.bool and inside.shape == (22500,)
    assert inside.device.type == torch.device(device).type
    assert int(inside.sum()) == 8940
    # the first nine are the golden base anchors, the last nine sit at cell (49, 49)
    check_close(to_np(anchors[:9]), seed_nine(), RTOL[dtype], 1e-4)
    check_close(to_np(anchors[-9:]), seed_nine() + 49 * 16, RTOL[dtype], 1e-3)


# ------------------------------------------------------------------ kernel == reference
SIZES = st.lists(
    st.one_of(
        st.sampled_from([16, 32, 64, 128, 256, 512]), st.floats(2, 600).map(lambda v: round(v, 2))
    ),
    min_size=1,
    max_size=3,
)
RATIOS = st.lists(
    st.one_of(
        st.sampled_from([0.5, 1.0, 2.0, 0.25, 4.0]), st.floats(0.2, 5).map(lambda v: round(v, 3))
    ),
    min_size=1,
    max_size=3,
)
STRIDE = st.one_of(
    st.integers(1, 64),
    st.floats(1, 64).map(lambda v: round(v, 2)),
    st.tuples(st.integers(1, 64), st.integers(1, 64)),
)
OFFSET = st.sampled_from([0.0, 0.5, 0.25])


def anchors_atol(expected, base, n_cells, dtype):
    """The base anchors are themselves rounded to the dtype before the shift is added, so the
    error has an eps(dtype) * |base| part besides the output rounding."""
    b = np.tile(np.abs(base), (n_cells, 1))
    return eps(dtype) * b + 8 * compute_eps(dtype) * (np.abs(expected) + 2 * b) + ATOL[dtype]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(
    fs=st.tuples(st.integers(0, 9), st.integers(0, 9)),
    stride=STRIDE,
    sizes=SIZES,
    ratios=RATIOS,
    offset=OFFSET,
    rounded=st.booleans(),
)
def test_generate_anchors_matches_reference(
    device, dtype, fs, stride, sizes, ratios, offset, rounded
):
    out = frcnn_fast.generate_anchors(
        fs, stride, sizes, ratios, offset, rounded=rounded, dtype=dtype, device=device
    )
    a = len(sizes) * len(ratios)
    check_result_tensor(out, dtype, device, (fs[0] * fs[1] * a, 4))
    expected = R.generate_anchors(fs, stride, sizes, ratios, offset, rounded=rounded)
    base = R.base_anchors(sizes, ratios, rounded=rounded)
    check_close(
        to_np(out),
        expected,
        RTOL[dtype],
        anchors_atol(expected, base, fs[0] * fs[1], dtype),
        fs=fs,
        stride=stride,
        sizes=sizes,
        ratios=ratios,
        offset=offset,
        rounded=rounded,
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(sizes=SIZES, ratios=RATIOS, rounded=st.booleans())
def test_base_anchors_matches_reference(device, dtype, sizes, ratios, rounded):
    out = frcnn_fast.base_anchors(sizes, ratios, rounded=rounded, dtype=dtype, device=device)
    check_result_tensor(out, dtype, device, (len(sizes) * len(ratios), 4))
    expected = R.base_anchors(sizes, ratios, rounded=rounded)
    check_close(to_np(out), expected, RTOL[dtype], ATOL[dtype], sizes=sizes, ratios=ratios)
    if rounded and dtype == torch.float64:
        assert np.array_equal(to_np(out), np.round(to_np(out)))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FULL)
def test_generate_anchors_row_major(device, dtype):
    # H != W and stride_y != stride_x, so any swap of i/j or y/x shows
    h, w, sy, sx, off = 3, 5, 8.0, 12.0, 0.5
    sizes, ratios = (32, 64), (0.5, 1.0, 2.0)
    out = to_np(
        frcnn_fast.generate_anchors(
            (h, w), (sy, sx), sizes, ratios, off, dtype=dtype, device=device
        )
    )
    base = to_np(frcnn_fast.base_anchors(sizes, ratios, dtype=dtype))
    a = len(base)
    assert out.shape == (h * w * a, 4)
    for i in range(h):
        for j in range(w):
            cx, cy = (j + off) * sx, (i + off) * sy
            for k in range(a):
                row = out[(i * w + j) * a + k]
                check_close(row, base[k] + [cx, cy, cx, cy], 0, 1e-4, cell=(i, j, k))
    # the layout a conv head flattens (N, A*4, H, W) -> (N, H, W, A, 4) into
    grid = out.reshape(h, w, a, 4)
    assert np.allclose(grid[:, :, :, 0] - grid[:1, :1, :, 0], (np.arange(w) * sx)[None, :, None])
    assert np.allclose(grid[:, :, :, 1] - grid[:1, :1, :, 1], (np.arange(h) * sy)[:, None, None])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FULL)
def test_generate_anchors_empty_map(device, dtype):
    for fs in [(0, 0), (0, 7), (7, 0)]:
        out = frcnn_fast.generate_anchors(fs, 16, dtype=dtype, device=device)
        check_result_tensor(out, dtype, device, (0, 4))


# ------------------------------------------------------------------ multi-level
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FULL)
@given(
    levels=st.lists(
        st.tuples(st.tuples(st.integers(0, 6), st.integers(0, 6)), STRIDE, SIZES, RATIOS),
        min_size=1,
        max_size=4,
    ),
    shared=st.one_of(st.none(), RATIOS),
    offset=OFFSET,
    rounded=st.booleans(),
)
def test_multilevel_is_concatenation(device, dtype, levels, shared, offset, rounded):
    fss = [lv[0] for lv in levels]
    strides = [lv[1] for lv in levels]
    sizes = [tuple(lv[2]) for lv in levels]
    ratios = tuple(shared) if shared is not None else [tuple(lv[3]) for lv in levels]
    out = frcnn_fast.generate_anchors_multilevel(
        fss, strides, sizes, ratios, offset, rounded=rounded, dtype=dtype, device=device
    )
    per_level = [
        frcnn_fast.generate_anchors(
            fs,
            s,
            sz,
            (shared if shared is not None else lv[3]),
            offset,
            rounded=rounded,
            dtype=dtype,
            device=device,
        )
        for fs, s, sz, lv in zip(fss, strides, sizes, levels)
    ]
    cat = torch.cat(per_level)
    check_result_tensor(out, dtype, device, cat.shape)
    assert torch.equal(out, cat)
    expected = R.generate_anchors_multilevel(fss, strides, sizes, ratios, offset, rounded=rounded)
    check_close(to_np(out), expected, RTOL[dtype], 1e-3)


# ------------------------------------------------------------------ anchors_inside
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(
    boxes=box_arrays(max_n=24, grid=True, lim=300),
    size=st.tuples(st.integers(0, 300), st.integers(0, 300)),
    border=st.sampled_from([0.0, 3.0, 32.5]),
)
def test_anchors_inside_matches_reference(device, dtype, boxes, size, border):
    t = to_tensor(boxes, dtype, device)
    out = frcnn_fast.anchors_inside(t, size, border)
    assert out.dtype == torch.bool and tuple(out.shape) == (len(boxes),)
    assert out.device.type == torch.device(device).type
    expected = R.anchors_inside(to_np(t), size, border)
    assert out.cpu().numpy().tolist() == expected.tolist(), (to_np(t), size, border)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_anchors_inside_at_the_border(device, dtype):
    """Anchors one ulp (of their dtype) either side of ``width + border`` / ``height + border``
    and ``-border``: the comparison is against the exact bound, which need not be representable
    in the anchors' dtype (e.g. 333.5 in bfloat16, whose neighbours are 332 and 334)."""
    height, width, border = 300, 301, 32.5
    rows = []
    for bound, col in ((width + border, 2), (height + border, 3), (-border, 0), (-border, 1)):
        # every value of the dtype within 4 px of the bound (the bound itself may not be one)
        near = np.unique(to_np(to_tensor(np.arange(bound - 4, bound + 4, 1 / 16), dtype)))
        for v in near:
            row = [0.0, 0.0, 10.0, 10.0]
            row[col] = v
            rows.append(row)
    t = to_tensor(rows, dtype, device)
    out = frcnn_fast.anchors_inside(t, (height, width), border)
    expected = R.anchors_inside(to_np(t), (height, width), border)
    assert out.cpu().tolist() == expected.tolist(), list(
        zip(to_np(t).tolist(), out.cpu().tolist(), expected.tolist())
    )


# ------------------------------------------------------------------ AnchorGenerator
CONFIGS = [
    pytest.param(((128, 256, 512),), ((0.5, 1.0, 2.0),), [(50, 38)], id="single-level"),
    pytest.param(
        ((32,), (64,), (128,)), ((0.5, 1.0, 2.0),) * 3, [(50, 38), (25, 19), (13, 10)], id="fpn"
    ),
    pytest.param(((16, 24), (40,)), ((1.0,), (0.5, 2.0, 3.0)), [(7, 9), (3, 4)], id="mixed"),
]


def _inputs(device, dtype, fmaps, n=2, image=(800, 608)):
    images = torch.zeros(n, 3, *image, dtype=dtype, device=device)
    feats = [torch.zeros(n, 4, h, w, dtype=dtype, device=device) for h, w in fmaps]
    return images, feats


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FULL)
@pytest.mark.parametrize("sizes,ratios,fmaps", CONFIGS)
def test_anchor_generator_matches_torchvision(device, dtype, sizes, ratios, fmaps):
    images, feats = _inputs(device, dtype, fmaps)
    ours = frcnn_fast.AnchorGenerator(sizes, ratios, offset=0.0, rounded=True)
    theirs = TVAnchorGenerator(sizes, ratios)
    assert ours.num_anchors_per_location() == theirs.num_anchors_per_location()
    got = ours(images, feats)
    want = theirs(ImageList(images, [tuple(images.shape[-2:])] * len(images)), feats)
    assert len(got) == len(want) == len(images)
    for g, w in zip(got, want):
        check_result_tensor(g, dtype, device, w.shape)
        torch.testing.assert_close(g, w)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sizes,ratios,fmaps", CONFIGS)
def test_anchor_generator_is_multilevel(device, sizes, ratios, fmaps):
    images, feats = _inputs(device, torch.float32, fmaps, n=1, image=(512, 480))
    gen = frcnn_fast.AnchorGenerator(sizes, ratios)  # offset 0.5, not rounded
    (got,) = gen(images, feats)
    # torchvision's stride rule: image size // feature size, per axis
    strides = [(512 // h, 480 // w) for h, w in fmaps]
    want = R.generate_anchors_multilevel(fmaps, strides, sizes, ratios, 0.5)
    check_close(to_np(got), want, RTOL[torch.float32], 1e-3)
