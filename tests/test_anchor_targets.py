"""Anchor targets: the golden case, torch vs reference on hypothesis scenes (labels before
sampling exactly equal), sampler properties, documented edge cases and bad input."""

import numpy as np
import pytest
import torch
from helpers import DEVICES, SEED_RATIOS, SEED_SIZES, box_arrays, check_close, to_np
from hypothesis import given
from hypothesis import strategies as st

import frcnn_fast
import frcnn_fast.reference as R
from frcnn_fast.detection import anchor_targets, balanced_sample

GOLDEN_GT = [[30.0, 20.0, 500.0, 400.0], [400.0, 300.0, 600.0, 500.0]]


def golden_anchors(device="cpu", dtype=torch.float32):
    return frcnn_fast.generate_anchors(
        (50, 50), 16, SEED_SIZES, SEED_RATIOS, 0.5, dtype=dtype, device=device
    )


def counts(labels, inside):
    labels = np.asarray(labels)
    return (
        int((labels == 1).sum()),
        int((labels == 0).sum()),
        int(((labels == -1) & inside).sum()),
        int((~inside).sum()),
    )


@pytest.mark.parametrize("device", DEVICES)
def test_golden_case(device):
    anchors = golden_anchors(device)
    gt = torch.tensor(GOLDEN_GT, device=device)
    inside = to_np(frcnn_fast.anchors_inside(anchors, (800, 800)))
    assert anchors.shape[0] == 22500 and inside.sum() == 8940
    labels, matched, targets = anchor_targets(anchors, [gt], [(800, 800)], sample=False)
    assert counts(to_np(labels[0]), inside) == (18, 7690, 1232, 13560)
    m = to_np(matched[0])
    assert ((m >= 0) == (to_np(labels[0]) == 1)).all()
    # the reference, in float64, agrees
    rl, rm, rt = R.anchor_targets(to_np(anchors), [GOLDEN_GT], [(800, 800)], sample=False)
    np.testing.assert_array_equal(to_np(labels), rl)
    np.testing.assert_array_equal(m, rm[0])
    check_close(to_np(targets), rt, rtol=1e-5, atol=1e-5)
    # sampled: all 18 positives, negatives fill the 256
    g = torch.Generator(device=device).manual_seed(0)
    labels, _, _ = anchor_targets(anchors, [gt], [(800, 800)], generator=g)
    assert counts(to_np(labels[0]), inside)[:2] == (18, 238)


@st.composite
def scenes(draw):
    """A few images of different sizes sharing one anchor grid, each with 0..12 ground truths
    (tiny, huge, degenerate and duplicated ones included)."""
    b = draw(st.integers(1, 3))
    sizes = [(draw(st.integers(16, 96)), draw(st.integers(16, 96))) for _ in range(b)]
    gts = []
    for h, w in sizes:
        g = draw(box_arrays(max_n=12, lim=max(h, w), grid=draw(st.booleans())))
        if len(g) and draw(st.booleans()):
            g = np.concatenate([g, g[:1]])  # duplicate ground truth
        gts.append(g)
    stride = draw(st.sampled_from([8, 16]))
    sizes_px = draw(st.sampled_from([(16, 32, 64), (8, 16), (32,)]))
    return sizes, gts, stride, sizes_px


def scene_anchors(stride, sizes_px, device, dtype):
    return frcnn_fast.generate_anchors(
        (96 // stride, 96 // stride), stride, sizes_px, (0.5, 1.0, 2.0), 0.5,
        dtype=dtype, device=device,
    )  # fmt: skip


@pytest.mark.parametrize("device", DEVICES)
@given(scene=scenes(), high=st.sampled_from([0.7, 0.5]), low=st.sampled_from([0.3, 0.5]))
def test_matches_reference(device, scene, high, low):
    sizes, gts, stride, sizes_px = scene
    anchors = scene_anchors(stride, sizes_px, device, torch.float64)
    gt_t = [torch.tensor(g, dtype=torch.float64, device=device) for g in gts]
    labels, matched, targets = anchor_targets(
        anchors, gt_t, sizes, high=high, low=low, sample=False
    )
    rl, rm, rt = R.anchor_targets(to_np(anchors), gts, sizes, high=high, low=low, sample=False)
    np.testing.assert_array_equal(to_np(labels), rl)
    np.testing.assert_array_equal(to_np(matched), rm)
    check_close(to_np(targets), rt, rtol=1e-9, atol=1e-9)
    # anchors outside their own image are never labelled
    for b, s in enumerate(sizes):
        outside = ~to_np(frcnn_fast.anchors_inside(anchors, s))
        assert (to_np(labels[b])[outside] == -1).all()


@pytest.mark.parametrize("device", DEVICES)
@given(
    scene=scenes(), bs=st.sampled_from([0, 1, 7, 256]), frac=st.sampled_from([0.0, 0.25, 0.5, 1.0])
)
def test_sampler_properties(device, scene, bs, frac):
    sizes, gts, stride, sizes_px = scene
    anchors = scene_anchors(stride, sizes_px, device, torch.float32)
    gt_t = [torch.tensor(g, dtype=torch.float32, device=device) for g in gts]
    full, _, _ = anchor_targets(anchors, gt_t, sizes, sample=False)
    kw = dict(batch_size_per_image=bs, positive_fraction=frac)
    g1 = torch.Generator(device=device).manual_seed(7)
    lab, _, _ = anchor_targets(anchors, gt_t, sizes, generator=g1, **kw)
    full, lab = to_np(full), to_np(lab)
    for row_full, row in zip(full, lab):
        npos, nneg = (row_full == 1).sum(), (row_full == 0).sum()
        want_pos = min(npos, int(bs * frac))
        assert (row == 1).sum() == want_pos
        assert (row == 0).sum() == min(nneg, bs - want_pos)
        assert ((row == 1) <= (row_full == 1)).all() and ((row == 0) <= (row_full == 0)).all()
    # the same seed draws the same sample; the reference's sample has the same counts
    g2 = torch.Generator(device=device).manual_seed(7)
    again, _, _ = anchor_targets(anchors, gt_t, sizes, generator=g2, **kw)
    np.testing.assert_array_equal(lab, to_np(again))
    # the reference's sampler obeys the same rule on its own labels
    rfull, _, _ = R.anchor_targets(to_np(anchors), gts, sizes, sample=False)
    rl, _, _ = R.anchor_targets(to_np(anchors), gts, sizes, rng=np.random.default_rng(0), **kw)
    want_pos = np.minimum((rfull == 1).sum(1), int(bs * frac))
    np.testing.assert_array_equal((rl == 1).sum(1), want_pos)
    np.testing.assert_array_equal((rl == 0).sum(1), np.minimum((rfull == 0).sum(1), bs - want_pos))
    assert ((rl == 1) <= (rfull == 1)).all() and ((rl == 0) <= (rfull == 0)).all()


@pytest.mark.parametrize("device", DEVICES)
def test_sampler_uniform_and_seeded(device):
    labels = torch.zeros((2, 40), dtype=torch.int64, device=device)
    labels[:, :10] = 1
    labels[1, 30:] = -1
    hits = torch.zeros(40)
    for seed in range(200):
        g = torch.Generator(device=device).manual_seed(seed)
        out = balanced_sample(labels, 8, 0.5, g)
        assert (out[0] == 1).sum() == 4 and (out[0] == 0).sum() == 4
        assert (out[1, 30:] == -1).all()
        hits += (out[0] == 1).cpu().float()
    # each of the 10 positives is drawn with probability 4/10: 80 of 200 on average
    assert hits[:10].min() > 50 and hits[:10].max() < 110 and hits[10:].sum() == 0
    a = balanced_sample(labels, 8, 0.5, torch.Generator(device=device).manual_seed(1))
    b = balanced_sample(labels, 8, 0.5, torch.Generator(device=device).manual_seed(2))
    assert not torch.equal(a, b)


@pytest.mark.parametrize("device", DEVICES)
def test_edge_cases(device):
    anchors = golden_anchors(device)
    inside = to_np(frcnn_fast.anchors_inside(anchors, (800, 800)))
    empty = torch.zeros((0, 4), device=device)
    # no ground truths: every eligible anchor negative
    labels, matched, targets = anchor_targets(anchors, [empty], [(800, 800)], sample=False)
    assert counts(to_np(labels[0]), inside) == (0, 8940, 0, 13560)
    assert (to_np(matched) == -1).all() and (to_np(targets) == 0).all()
    # an image smaller than every anchor: all -1, while the other image of the batch is normal
    gt = torch.tensor(GOLDEN_GT, device=device)
    labels, _, _ = anchor_targets(anchors, [gt, gt], [(800, 800), (10, 10)], sample=False)
    assert (to_np(labels[1]) == -1).all()
    assert counts(to_np(labels[0]), inside)[:2] == (18, 7690)
    # no images
    labels, matched, targets = anchor_targets(anchors, [], [])
    assert labels.shape == (0, 22500) and targets.shape == (0, 22500, 4)


def test_bad_input():
    anchors = golden_anchors()
    gt = torch.tensor(GOLDEN_GT)
    with pytest.raises(ValueError, match=r"gt_boxes\[0\] must have shape"):
        anchor_targets(anchors, [gt[:, :3]], [(800, 800)])
    with pytest.raises(ValueError, match=r"gt_boxes\[1\] has non-finite"):
        anchor_targets(anchors, [gt, torch.tensor([[0.0, 0.0, float("nan"), 5.0]])], [(8, 8)] * 2)
    with pytest.raises(ValueError, match="image_sizes has 1 entries but gt_boxes has 2"):
        anchor_targets(anchors, [gt, gt], [(800, 800)])
    with pytest.raises(ValueError, match=r"low \(0.8\) must be <= high"):
        anchor_targets(anchors, [gt], [(800, 800)], low=0.8)
    with pytest.raises(ValueError, match=r"high must be in \[0, 1\]"):
        anchor_targets(anchors, [gt], [(800, 800)], high=1.5)
    with pytest.raises(ValueError, match=r"positive_fraction must be in \[0, 1\]"):
        anchor_targets(anchors, [gt], [(800, 800)], positive_fraction=-0.1)
    with pytest.raises(ValueError, match="anchors must have shape"):
        anchor_targets(anchors[:, :2], [gt], [(800, 800)])
    with pytest.raises(TypeError, match="gt_boxes must be a list"):
        anchor_targets(anchors, gt, [(800, 800)])
