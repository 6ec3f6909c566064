"""Losses: smooth L1 vs torch, the RPN and box-head losses vs torchvision's given the same
sample, both normalisations vs the reference, empty samples, gradients."""

import pytest
import torch
import torch.nn.functional as F
from helpers import check_close, to_np
from hypothesis import given
from hypothesis import strategies as st
from torchvision.models.detection.roi_heads import fastrcnn_loss
from torchvision.models.detection.rpn import RegionProposalNetwork

import frcnn_fast.reference as R
from frcnn_fast.detection import box_head_loss, rpn_loss, smooth_l1_loss


@pytest.mark.parametrize("beta", [0.0, 1.0 / 9, 1.0])
def test_smooth_l1_equals_torch(beta):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(50, 4, generator=g), torch.randn(50, 4, generator=g)
    a[0] = b[0] + beta  # exactly at the knee
    for red in ("none", "sum", "mean"):
        torch.testing.assert_close(
            smooth_l1_loss(a, b, beta, red), F.smooth_l1_loss(a, b, beta=beta, reduction=red)
        )
    check_close(
        to_np(smooth_l1_loss(a, b, beta)), R.smooth_l1_loss(to_np(a), to_np(b), beta), 1e-5, 1e-5
    )


def rpn_case(seed, b=2, a=300):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(-1, 2, (b, a), generator=g)
    return (
        torch.randn(b, a, generator=g, dtype=torch.float64),
        torch.randn(b, a, 4, generator=g, dtype=torch.float64),
        labels,
        torch.randn(b, a, 4, generator=g, dtype=torch.float64),
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_rpn_loss_equals_torchvision(seed):
    objectness, deltas, labels, targets = rpn_case(seed)
    # torchvision samples with its own sampler; with a sample size above the number of anchors
    # it keeps every labelled anchor, i.e. exactly our sample
    rpn = RegionProposalNetwork(None, None, 0.7, 0.3, 10**6, 0.5, {}, {}, 0.7)
    tv_obj, tv_box = rpn.compute_loss(
        objectness.reshape(-1, 1), deltas.reshape(-1, 4), list(labels.double()), list(targets)
    )
    obj, box = rpn_loss(objectness, deltas, labels, targets)
    torch.testing.assert_close(obj, tv_obj, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(box, tv_box, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_box_head_loss_equals_torchvision(seed):
    g = torch.Generator().manual_seed(seed)
    n, c = 64, 5
    logits = torch.randn(n, c, generator=g, dtype=torch.float64)
    reg = torch.randn(n, 4 * c, generator=g, dtype=torch.float64)
    labels = [torch.randint(0, c, (40,), generator=g), torch.randint(0, c, (24,), generator=g)]
    targets = [
        torch.randn(40, 4, generator=g, dtype=torch.float64),
        torch.randn(24, 4, generator=g, dtype=torch.float64),
    ]
    tv_cls, tv_box = fastrcnn_loss(logits, reg, labels, targets)
    cls, box = box_head_loss(logits, reg, labels, targets)
    torch.testing.assert_close(cls, tv_cls, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(box, tv_box, rtol=1e-12, atol=1e-12)


@given(
    seed=st.integers(0, 2**16),
    beta=st.sampled_from([0.0, 1.0 / 9, 1.0]),
    norm=st.sampled_from(["torchvision", "tutorial"]),
)
def test_match_reference(seed, beta, norm):
    objectness, deltas, labels, targets = rpn_case(seed, 1, 40)
    got = rpn_loss(objectness, deltas, labels, targets, beta=beta, normalization=norm)
    want = R.rpn_loss(to_np(objectness), to_np(deltas), to_np(labels), to_np(targets), beta, norm)
    check_close([float(v) for v in got], want, 1e-12, 1e-12)
    g = torch.Generator().manual_seed(seed)
    logits, reg = (
        torch.randn(30, 4, generator=g, dtype=torch.float64),
        torch.randn(30, 16, generator=g, dtype=torch.float64),
    )
    lab = torch.randint(-1, 4, (30,), generator=g)
    tgt = torch.randn(30, 4, generator=g, dtype=torch.float64)
    got = box_head_loss(logits, reg, lab, tgt, beta=beta, normalization=norm)
    want = R.box_head_loss(to_np(logits), to_np(reg), to_np(lab), to_np(tgt), beta, norm)
    check_close([float(v) for v in got], want, 1e-12, 1e-12)


def test_empty_samples_and_gradients():
    objectness, deltas, labels, targets = rpn_case(0, 1, 10)
    obj, box = rpn_loss(objectness, deltas, torch.full_like(labels, -1), targets)
    assert obj.item() == 0.0 and box.item() == 0.0
    objectness.requires_grad_(True)
    deltas.requires_grad_(True)
    obj, box = rpn_loss(objectness, deltas, labels, targets, normalization="tutorial")
    (obj + box).backward()
    assert torch.isfinite(objectness.grad).all() and torch.isfinite(deltas.grad).all()
    assert (objectness.grad[labels < 0] == 0).all() and (deltas.grad[labels != 1] == 0).all()


def test_bad_input():
    a = torch.zeros(3, 4)
    with pytest.raises(ValueError, match="input and target must have the same shape"):
        smooth_l1_loss(a, torch.zeros(3, 3))
    with pytest.raises(ValueError, match="beta must be >= 0"):
        smooth_l1_loss(a, a, -1.0)
    with pytest.raises(ValueError, match="normalization must be one of"):
        rpn_loss(
            torch.zeros(1, 3),
            torch.zeros(1, 3, 4),
            torch.zeros(1, 3),
            torch.zeros(1, 3, 4),
            normalization="x",
        )
    with pytest.raises(ValueError, match="same anchors"):
        rpn_loss(torch.zeros(1, 3), torch.zeros(1, 2, 4), torch.zeros(1, 3), torch.zeros(1, 3, 4))
    with pytest.raises(ValueError, match=r"box_regression must have shape \[N, 4 \* C\]"):
        box_head_loss(
            torch.zeros(3, 2),
            torch.zeros(3, 4),
            torch.zeros(3, dtype=torch.int64),
            torch.zeros(3, 4),
        )
