"""Proposal targets: equal to torchvision's RoIHeads.select_training_samples when both keep every
candidate, torch vs reference (exact before sampling), sampler properties, edge cases, bad input."""

import numpy as np
import pytest
import torch
from helpers import DEVICES, box_arrays, check_close, to_np
from hypothesis import given
from hypothesis import strategies as st
from torchvision.models.detection.roi_heads import RoIHeads

import frcnn_fast.reference as R
from frcnn_fast.detection import proposal_targets

BIG = 10**6  # a sample size no image reaches: every candidate is kept


def tv_heads(fg, bg):
    return RoIHeads(None, None, None, fg, bg, BIG, 0.25, (10.0, 10.0, 5.0, 5.0), 0.05, 0.5, 100)


def random_scene(seed, b=2, dtype=torch.float32):
    g = np.random.default_rng(seed)
    proposals, gts, labels = [], [], []
    for _ in range(b):
        n, m = int(g.integers(0, 60)), int(g.integers(1, 6))
        xy = g.uniform(0, 200, (n + m, 2))
        wh = g.uniform(4, 80, (n + m, 2))
        boxes = np.concatenate([xy, xy + wh], 1)
        proposals.append(torch.tensor(boxes[:n], dtype=dtype))
        gts.append(torch.tensor(boxes[n:], dtype=dtype))
        labels.append(torch.tensor(g.integers(1, 5, m), dtype=torch.int64))
    return proposals, gts, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_torchvision_when_everything_is_kept(seed):
    proposals, gts, labels = random_scene(seed)
    heads = tv_heads(0.5, 0.5)
    targets = [{"boxes": g, "labels": lab} for g, lab in zip(gts, labels)]
    tv_props, tv_matched, tv_labels, tv_targets = heads.select_training_samples(
        [p.clone() for p in proposals], targets
    )
    boxes, lab, reg, matched = proposal_targets(
        proposals, gts, labels, batch_size_per_image=BIG, generator=torch.Generator().manual_seed(0)
    )
    for b in range(2):
        torch.testing.assert_close(boxes[b], tv_props[b], rtol=0, atol=0)
        torch.testing.assert_close(lab[b], tv_labels[b], rtol=0, atol=0)
        fg = lab[b] > 0
        torch.testing.assert_close(reg[b][fg], tv_targets[b][fg], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(matched[b][fg], tv_matched[b][fg], rtol=0, atol=0)
        assert (matched[b][~fg] == -1).all() and (reg[b][~fg] == 0).all()


@st.composite
def scenes(draw):
    b = draw(st.integers(1, 3))
    props = [draw(box_arrays(max_n=30, lim=200, grid=draw(st.booleans()))) for _ in range(b)]
    gts = [draw(box_arrays(max_n=6, lim=200, grid=True)) for _ in range(b)]
    gts = [np.concatenate([g, g[:1]]) if len(g) and draw(st.booleans()) else g for g in gts]
    labels = [
        np.asarray(draw(st.lists(st.integers(1, 9), min_size=len(g), max_size=len(g)))) for g in gts
    ]
    band = draw(st.sampled_from([(0.5, 0.5, 0.0), (0.5, 0.5, 0.1), (0.7, 0.5, 0.1)]))
    return props, gts, labels, band


@pytest.mark.parametrize("device", DEVICES)
@given(scene=scenes(), bs=st.sampled_from([1, 8, 128]))
def test_matches_reference(device, scene, bs):
    props, gts, labels, (fg, bg_hi, bg_lo) = scene
    t = lambda a: torch.tensor(a, dtype=torch.float64, device=device).reshape(-1, 4)  # noqa: E731
    pt, gt = [t(p) for p in props], [t(g) for g in gts]
    lt = [torch.tensor(lab, dtype=torch.int64, device=device).reshape(-1) for lab in labels]
    kw = dict(fg_iou=fg, bg_iou_high=bg_hi, bg_iou_low=bg_lo)
    boxes, lab, reg, matched = proposal_targets(pt, gt, lt, sample=False, **kw)
    ref = R.proposal_targets(props, gts, labels, sample=False, **kw)
    for b, (rb, rl, rr, rm) in enumerate(ref):
        check_close(to_np(boxes[b]), rb, rtol=0, atol=0)
        np.testing.assert_array_equal(to_np(lab[b]), rl)
        np.testing.assert_array_equal(to_np(matched[b]), rm)
        check_close(to_np(reg[b]), rr, rtol=1e-9, atol=1e-9)
    # sampled: a subset of the candidates, at most bs with at most 25 % foreground
    g = torch.Generator(device=device).manual_seed(3)
    sb, sl, _, _ = proposal_targets(pt, gt, lt, batch_size_per_image=bs, generator=g, **kw)
    for b in range(len(props)):
        nfg, nbg = int((lab[b] > 0).sum()), int((lab[b] == 0).sum())
        want_fg = min(nfg, int(bs * 0.25))
        assert int((sl[b] > 0).sum()) == want_fg
        assert int((sl[b] == 0).sum()) == min(nbg, bs - want_fg)
        cand = {tuple(r) for r in to_np(boxes[b]).tolist()}
        assert all(tuple(r) in cand for r in to_np(sb[b]).tolist())


@pytest.mark.parametrize("device", DEVICES)
def test_edge_cases(device):
    gt = torch.tensor([[10.0, 10.0, 50.0, 50.0]], device=device)
    lab = torch.tensor([3], device=device)
    empty = torch.zeros((0, 4), device=device)
    # zero proposals: the ground truth alone, as foreground
    boxes, labels, reg, matched = proposal_targets([empty], [gt], [lab])
    assert torch.equal(boxes[0], gt) and labels[0].tolist() == [3] and matched[0].tolist() == [0]
    assert (reg[0] == 0).all()
    # no ground truths: all background, even with a background band starting at 0.1
    props = torch.tensor([[0.0, 0.0, 5.0, 5.0], [1.0, 1.0, 9.0, 9.0]], device=device)
    none = torch.zeros((0,), dtype=torch.int64, device=device)
    boxes, labels, reg, matched = proposal_targets([props], [empty], [none], bg_iou_low=0.1)
    assert labels[0].tolist() == [0, 0] and matched[0].tolist() == [-1, -1]
    assert proposal_targets([], [], []) == ([], [], [], [])


def test_bad_input():
    gt = torch.tensor([[10.0, 10.0, 50.0, 50.0]])
    lab = torch.tensor([1])
    props = torch.zeros((0, 4))
    with pytest.raises(ValueError, match="one entry per image"):
        proposal_targets([props, props], [gt], [lab])
    with pytest.raises(ValueError, match=r"gt_labels\[0\] must have shape \[1\]"):
        proposal_targets([props], [gt], [torch.tensor([1, 2])])
    with pytest.raises(ValueError, match=r"gt_boxes\[0\] has non-finite"):
        proposal_targets([props], [torch.tensor([[0.0, 0.0, float("inf"), 1.0]])], [lab])
    with pytest.raises(ValueError, match=r"bg_iou_high \(0.6\) must be <= fg_iou"):
        proposal_targets([props], [gt], [lab], bg_iou_high=0.6)
    with pytest.raises(ValueError, match=r"bg_iou_low \(0.4\) must be <= bg_iou_high"):
        proposal_targets([props], [gt], [lab], bg_iou_high=0.3, bg_iou_low=0.4)
    with pytest.raises(ValueError, match=r"proposals\[0\] must have shape"):
        proposal_targets([torch.zeros(3)], [gt], [lab])
