"""torch.compile(fullgraph=True) through the custom ops (fake kernels, no graph breaks).
Kept to one function: compilation is slow on small CI machines."""

import numpy as np
import pytest
import torch
from helpers import REAL_DEVICES, random_boxes

import frcnn_fast

WEIGHTS = (10.0, 10.0, 5.0, 5.0)


def pipeline(ref, tgt, base):
    deltas = frcnn_fast.encode_boxes(ref, tgt, WEIGHTS)
    boxes = frcnn_fast.decode_boxes(deltas * 0.5, ref, WEIGHTS)
    boxes = frcnn_fast.clip_boxes(boxes, (600, 800))
    iou = frcnn_fast.box_iou(boxes, tgt)
    area = frcnn_fast.box_area(frcnn_fast.box_convert(boxes, "xyxy", "cxcywh"))
    aligned = frcnn_fast.box_iou_aligned(boxes, tgt)
    anchors = torch.ops.frcnn_fast.grid_anchors(base, 4, 6, 16.0, 16.0, 0.5)
    return iou, area, aligned, anchors


@pytest.mark.parametrize("device", REAL_DEVICES)
def test_compile_fullgraph_matches_eager(device):
    rng = np.random.default_rng(0)
    ref = random_boxes(rng, 40, lim=500.0, degenerate_frac=0.0)
    tgt = random_boxes(rng, 40, lim=500.0, degenerate_frac=0.0)
    ref[:, 2:] = ref[:, :2] + np.maximum(ref[:, 2:] - ref[:, :2], 4.0)
    tgt[:, 2:] = tgt[:, :2] + np.maximum(tgt[:, 2:] - tgt[:, :2], 4.0)
    ref = torch.as_tensor(ref, dtype=torch.float32, device=device)
    tgt = torch.as_tensor(tgt, dtype=torch.float32, device=device)
    base = frcnn_fast.base_anchors(dtype=torch.float32, device=device)

    torch._dynamo.reset()
    compiled = torch.compile(pipeline, fullgraph=True)
    got = compiled(ref, tgt, base)
    want = pipeline(ref, tgt, base)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    # a second call with another number of boxes (recompiles or reuses a dynamic graph, but
    # must still agree with eager)
    got = compiled(ref[:17], tgt[:17], base)
    want = pipeline(ref[:17], tgt[:17], base)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


def detect(boxes, scores, idxs):
    keep, count = frcnn_fast.nms_padded(boxes, scores, 0.6, 16, score_threshold=0.1)
    bkeep, bcount = frcnn_fast.batched_nms_padded(boxes, scores, idxs, 0.6, 16)
    # the fixed-size result feeds further tensor code without a host sync
    valid = keep >= 0
    picked = boxes[keep.clamp(min=0)] * valid[:, None]
    return keep, count, bkeep, bcount, picked


@pytest.mark.parametrize("device", REAL_DEVICES)
def test_compile_fullgraph_padded_nms(device):
    rng = np.random.default_rng(1)
    b = random_boxes(rng, 60, lim=200.0, degenerate_frac=0.0)
    boxes = torch.as_tensor(b, dtype=torch.float32, device=device)
    scores = torch.as_tensor(rng.uniform(size=60), dtype=torch.float32, device=device)
    idxs = torch.as_tensor(rng.integers(0, 3, 60), device=device)
    torch._dynamo.reset()
    compiled = torch.compile(detect, fullgraph=True)
    for n in (60, 33):
        got = compiled(boxes[:n], scores[:n], idxs[:n])
        want = detect(boxes[:n], scores[:n], idxs[:n])
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=0, atol=0)


def roi_heads(x, rois, feats, boxes):
    a = frcnn_fast.roi_align(x, rois, (3, 3), 0.5, 2, True)
    p = frcnn_fast.roi_pool(x, rois, (2, 2), 0.5)
    m = frcnn_fast.MultiScaleRoIAlign(["p2", "p3"], 3, 2)(feats, boxes, [(32, 32), (32, 32)])
    return (a.square().sum() + p.sum() + m.square().sum()), a, p, m


@pytest.mark.parametrize("device", REAL_DEVICES)
def test_compile_roi_ops_forward_backward(device):
    """torch.compile(fullgraph=True) through roi_align, roi_pool and the multi-level pooler,
    forward and backward: same values and gradients as eager."""
    rng = np.random.default_rng(1)
    x = torch.as_tensor(rng.normal(size=(2, 4, 10, 12)), dtype=torch.float32, device=device)
    xy = rng.uniform(-2, 20, size=(9, 2))
    rois = torch.as_tensor(
        np.concatenate([rng.integers(0, 2, (9, 1)), xy, xy + rng.uniform(1, 12, (9, 2))], 1),
        dtype=torch.float32,
        device=device,
    )
    feats = {
        "p2": torch.randn(2, 4, 8, 8, device=device),
        "p3": torch.randn(2, 4, 4, 4, device=device),
    }
    boxes = [rois[:5, 1:] * 1.5, rois[5:, 1:] * 1.5]

    def run(fn):
        xi = x.clone().requires_grad_()
        fi = {k: v.clone().requires_grad_() for k, v in feats.items()}
        loss, *outs = fn(xi, rois, fi, boxes)
        grads = torch.autograd.grad(loss, [xi, *fi.values()])
        return outs, grads

    torch._dynamo.reset()
    got = run(torch.compile(roi_heads, fullgraph=True))
    want = run(roi_heads)
    for g, w in zip(got[0] + list(got[1]), want[0] + list(want[1])):
        torch.testing.assert_close(g, w)
