"""The NumPy reference on its own: golden vectors, properties, agreement with torchvision in
float64, and its packaging (``reference`` and ``frcnn_fast.reference`` expose the same API;
the reference imports NumPy only)."""

import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from helpers import WEIGHTS, box_arrays, box_pairs, check_close, seed_nine
from hypothesis import given
from hypothesis import strategies as st
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.anchor_utils import AnchorGenerator as TVAnchorGenerator
from torchvision.models.detection.image_list import ImageList

import frcnn_fast.reference as R
import reference as repo_reference

API_NAMES = {
    "box_area",
    "box_iou",
    "box_iou_aligned",
    "box_convert",
    "clip_boxes",
    "remove_small_boxes",
    "encode_boxes",
    "decode_boxes",
    "base_anchors",
    "generate_anchors",
    "generate_anchors_multilevel",
    "anchors_inside",
}


# ------------------------------------------------------------------ packaging
def _public(mod):
    return {n for n in dir(mod) if not n.startswith("_")}


def test_reference_and_installed_reference_expose_the_same_names():
    assert _public(repo_reference) == _public(R)
    assert getattr(repo_reference, "__all__", None) == getattr(R, "__all__", None)
    for name in API_NAMES:
        assert callable(getattr(R, name)), name
        assert callable(getattr(repo_reference, name)), name


def test_reference_is_numpy_only():
    # run in a fresh interpreter from the repo root: importing and using the reference must not
    # pull in torch (the reference is NumPy only, readable without torch)
    code = (
        "import sys\n"
        "import reference\n"
        "reference.box_iou([[0,0,1,1]], [[0,0,1,1]]); reference.generate_anchors((2,2), 16)\n"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith('torch.')]\n"
        "assert not bad, bad\n"
    )
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=str(root), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_reference_returns_float64_bool_int64():
    b32 = np.asarray([[0, 0, 2, 2], [1, 1, 3, 4]], dtype=np.float32)
    for out in (
        R.box_area(b32),
        R.box_iou(b32, b32),
        R.box_iou_aligned(b32, b32),
        R.box_convert(b32, "xyxy", "xywh"),
        R.clip_boxes(b32, (2, 2)),
        R.encode_boxes(b32, b32),
        R.decode_boxes(b32, b32),
        R.base_anchors(),
        R.generate_anchors((2, 2), 16),
        R.generate_anchors_multilevel([(1, 1)], [8], [(32,)], (1.0,)),
    ):
        assert out.dtype == np.float64
    assert R.remove_small_boxes(b32, 1.0).dtype == np.int64
    assert R.anchors_inside(b32, (3, 3)).dtype == np.bool_


# ------------------------------------------------------------------ golden vectors
def test_reference_golden_anchors():
    a = R.generate_anchors((1, 1), 16, (128, 256, 512), (0.5, 1.0, 2.0), 0.5)
    check_close(a, seed_nine(), 1e-12, 1e-12)
    check_close(a[0], [-82.50967, -37.254833, 98.50967, 53.254833], 0, 1e-5)
    check_close(a[4], [-120.0, -120.0, 136.0, 136.0], 0, 1e-12)
    check_close(R.base_anchors(), seed_nine(0.0), 1e-12, 1e-12)
    full = R.generate_anchors((50, 50), 16)
    assert full.shape == (22500, 4)
    assert int(R.anchors_inside(full, (800, 800)).sum()) == 8940


# ------------------------------------------------------------------ properties
@given(pair=box_pairs())
def test_reference_iou_properties(pair):
    a, b = pair
    iou = R.box_iou(a, b)
    assert iou.shape == (len(a), len(b))
    assert np.array_equal(iou, R.box_iou(b, a).T)
    assert np.all(np.isfinite(iou)) and np.all((iou >= 0) & (iou <= 1))
    positive = (a[:, 2] > a[:, 0]) & (a[:, 3] > a[:, 1])
    self_iou = np.diag(R.box_iou(a, a))
    check_close(self_iou[positive], np.ones(positive.sum()), 0, 1e-12)
    assert np.all(self_iou[~positive] == 0)
    k = min(len(a), len(b))
    check_close(R.box_iou_aligned(a[:k], b[:k]), np.diag(iou[:k, :k]), 0, 0)


def test_reference_zero_union():
    e = np.asarray([[1, 1, 1, 1], [3, 3, 2, 2]], dtype=np.float64)
    assert np.array_equal(R.box_iou(e, e), np.zeros((2, 2)))
    assert np.array_equal(R.box_iou_aligned(e, e), np.zeros(2))


@given(
    data=st.data(),
    weights=WEIGHTS,
)
def test_reference_decode_encode_round_trip(data, weights):
    ref = data.draw(box_arrays(degenerate=False, min_size=1.0))
    tgt = data.draw(box_arrays(n=len(ref), degenerate=False, min_size=1.0))
    back = R.decode_boxes(R.encode_boxes(ref, tgt, weights), ref, weights, clamp=10.0)
    check_close(back, tgt, 0, 1e-9 * (1 + np.abs(tgt).max(initial=0) + np.abs(ref).max(initial=0)))


@given(boxes=box_arrays(), fmts=st.tuples(*[st.sampled_from(R.BOX_FORMATS)] * 2))
def test_reference_convert_round_trip(boxes, fmts):
    a, b = fmts
    back = R.box_convert(R.box_convert(boxes, a, b), b, a)
    check_close(back, boxes, 0, 1e-12 * (1 + np.abs(boxes).max(initial=0)))


# ------------------------------------------------------------------ torchvision, float64
def _t(a):
    return torch.as_tensor(a, dtype=torch.float64)


@given(
    a=box_arrays(degenerate=False, min_size=0.125), b=box_arrays(degenerate=False, min_size=0.125)
)
def test_reference_matches_torchvision_box_ops(a, b):
    check_close(R.box_iou(a, b), torchvision.ops.box_iou(_t(a), _t(b)).numpy(), 1e-12, 1e-14)
    check_close(R.box_area(a), torchvision.ops.box_area(_t(a)).numpy(), 1e-12, 0)
    for f, g in itertools.product(("xyxy", "xywh", "cxcywh"), repeat=2):
        check_close(
            R.box_convert(a, f, g), torchvision.ops.box_convert(_t(a), f, g).numpy(), 1e-12, 1e-9
        )
    assert np.array_equal(
        R.clip_boxes(a, (300, 200)), torchvision.ops.clip_boxes_to_image(_t(a), (300, 200)).numpy()
    )
    assert (
        R.remove_small_boxes(a, 50.0).tolist()
        == torchvision.ops.remove_small_boxes(_t(a), 50.0).tolist()
    )


@given(data=st.data(), weights=WEIGHTS)
def test_reference_matches_torchvision_box_coder(data, weights):
    ref = data.draw(box_arrays(degenerate=False, min_size=1.0))
    tgt = data.draw(box_arrays(n=len(ref), degenerate=False, min_size=1.0))
    coder = BoxCoder(tuple(weights))
    enc = R.encode_boxes(ref, tgt, weights)
    check_close(enc, coder.encode_single(_t(tgt), _t(ref)).numpy(), 1e-9, 1e-9)
    deltas = np.concatenate([enc, -enc / 3], axis=1)
    check_close(
        R.decode_boxes(deltas, ref, weights),
        coder.decode_single(_t(deltas), _t(ref)).numpy(),
        1e-9,
        1e-7,
    )


@pytest.mark.parametrize(
    "sizes,ratios,fmaps",
    [
        (((128, 256, 512),), ((0.5, 1.0, 2.0),), [(25, 19)]),
        (((32,), (64,)), ((0.5, 1.0, 2.0),) * 2, [(20, 15), (10, 8)]),
    ],
)
def test_reference_matches_torchvision_anchor_generator(sizes, ratios, fmaps):
    image = (400, 300)
    feats = [torch.zeros(1, 1, h, w, dtype=torch.float64) for h, w in fmaps]
    (tv,) = TVAnchorGenerator(sizes, ratios)(ImageList(torch.zeros(1, 3, *image), [image]), feats)
    strides = [(image[0] // h, image[1] // w) for h, w in fmaps]
    ours = R.generate_anchors_multilevel(fmaps, strides, sizes, ratios, offset=0.0, rounded=True)
    assert np.array_equal(ours, tv.numpy())
