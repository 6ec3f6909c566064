"""MultiScaleRoIAlign and the multi-level op: level assignment, per-level equality with
roi_align, the NumPy reference, torchvision (forward and gradients)."""

import numpy as np
import pytest
import torch
import torchvision
from helpers import DEVICES, check_close, to_np
from hypothesis import given
from hypothesis import strategies as st

import frcnn_fast
import frcnn_fast.reference as R
from frcnn_fast.ops.poolers import fpn_levels


def _fpn(device, rng, n=2, c=3, image=(64, 64), levels=4, dtype=torch.float32):
    feats = {}
    for l in range(levels):
        s = 2 ** (l + 2)
        feats[f"p{l + 2}"] = torch.as_tensor(
            rng.normal(size=(n, c, image[0] // s, image[1] // s))
        ).to(dtype=dtype, device=device)
    return feats


def _boxes(rng, k, image, device, dtype=torch.float32):
    xy = rng.uniform(-4, image[1], size=(k, 2))
    wh = np.exp(rng.uniform(np.log(0.5), np.log(80), size=(k, 2)))
    b = np.concatenate([xy, xy + wh], 1)
    b[: k // 8, 2:] = b[: k // 8, :2]  # some zero-area boxes (lowest level)
    return torch.as_tensor(b).to(dtype=dtype, device=device)


@pytest.mark.parametrize("device", DEVICES)
@given(
    seed=st.integers(0, 10_000),
    counts=st.lists(st.integers(0, 12), min_size=1, max_size=3),
    sr=st.sampled_from([-1, 0, 2]),
)
def test_multiscale_matches_torchvision(device, seed, counts, sr):
    rng = np.random.default_rng(seed)
    image = (64, 64)
    feats = _fpn(device, rng, n=len(counts), image=image)
    boxes = [_boxes(rng, k, image, device) for k in counts]
    shapes = [image] * len(counts)
    names = ["p2", "p3", "p4", "p5"]
    ours_in = {k: v.clone().requires_grad_() for k, v in feats.items()}
    tv_in = {k: v.clone().requires_grad_() for k, v in feats.items()}
    ours = frcnn_fast.MultiScaleRoIAlign(names, 7, sr)(ours_in, boxes, shapes)
    theirs = torchvision.ops.MultiScaleRoIAlign(names, 7, sr)(tv_in, boxes, shapes)
    check_close(to_np(ours), to_np(theirs), 0, 1e-5)
    if ours.numel():
        g = torch.randn_like(ours)
        ga = torch.autograd.grad(ours, list(ours_in.values()), g)
        gb = torch.autograd.grad(theirs, list(tv_in.values()), g, allow_unused=True)
        for a, b in zip(ga, gb):
            check_close(to_np(a), to_np(b) if b is not None else np.zeros(a.shape), 0, 1e-4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_multilevel_op_equals_per_level_roi_align(device, layout):
    """multilevel_roi_align(inputs, rois, levels) row k == roi_align(inputs[levels[k]], rois[k])."""
    rng = np.random.default_rng(1)
    feats = list(_fpn(device, rng, image=(48, 40), levels=3, dtype=torch.float64).values())
    if layout == "channels_last":
        feats = [f.contiguous(memory_format=torch.channels_last) for f in feats]
    scales = [1 / 4, 1 / 8, 1 / 16]
    k = 30
    rois = torch.cat(
        [
            torch.as_tensor(rng.integers(0, 2, (k, 1)), dtype=torch.float64, device=device),
            _boxes(rng, k, (48, 40), device, torch.float64),
        ],
        1,
    )
    levels = torch.as_tensor(rng.integers(0, 3, k), device=device)
    inputs = [f.clone().requires_grad_() for f in feats]
    out = frcnn_fast.multilevel_roi_align(inputs, rois, levels, (3, 2), scales, 2, True)
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, inputs, g)
    expected_grads = [torch.zeros_like(f) for f in feats]
    for l in range(3):
        sel = (levels == l).nonzero().flatten()
        single = feats[l].clone().requires_grad_()
        o = frcnn_fast.roi_align(single, rois[sel], (3, 2), scales[l], 2, True)
        check_close(to_np(out[sel]), to_np(o), 1e-12, 1e-12)
        if len(sel):
            (expected_grads[l],) = torch.autograd.grad(o, single, g[sel])
    for a, b in zip(grads, expected_grads):
        check_close(to_np(a), to_np(b), 1e-12, 1e-12)
    ref = R.multilevel_roi_align(
        [to_np(f) for f in feats],
        to_np(rois),
        to_np(levels),
        (3, 2),
        scales,
        2,
        True,
        geometry=np.float64,
    )
    check_close(to_np(out), ref, 1e-9, 1e-9)


@given(seed=st.integers(0, 1000))
def test_fpn_levels_match_reference(seed):
    rng = np.random.default_rng(seed)
    b = _boxes(rng, 40, (800, 800), "cpu")
    b[0] = torch.tensor([1.0, 1.0, 1.0, 1.0])
    b[1] = torch.tensor([0.0, 0.0, 2000.0, 2000.0])
    got = fpn_levels([b[:10], b[10:]], 2, 5)
    assert np.array_equal(got.numpy(), R.fpn_levels(b.numpy(), 2, 5))
    assert got[0] == 0 and got[1] == 3


def test_multiscale_single_level_and_no_sync():
    """One level: plain roi_align at that level's scale."""
    rng = np.random.default_rng(0)
    x = {"feat": torch.randn(1, 2, 16, 16)}
    boxes = [_boxes(rng, 5, (64, 64), "cpu")]
    out = frcnn_fast.MultiScaleRoIAlign(["feat"], (3, 3), 2)(x, boxes, [(64, 64)])
    assert torch.equal(out, frcnn_fast.roi_align(x["feat"], boxes, (3, 3), 0.25, 2, False))
