"""The proposal layer: equal to torchvision's RegionProposalNetwork.filter_proposals, torch vs
reference on hypothesis inputs, the padded form equal to the list form, edge cases, bad input."""

import numpy as np
import pytest
import torch
from helpers import DEVICES, check_close, to_np
from hypothesis import given
from hypothesis import strategies as st
from torchvision.models.detection import _utils as tv_utils
from torchvision.models.detection.rpn import RegionProposalNetwork

import frcnn_fast
import frcnn_fast.reference as R
from frcnn_fast.detection import generate_proposals, generate_proposals_padded
from frcnn_fast.detection.proposals import _top

FEATURES = [(16, 20), (8, 10), (4, 5)]
STRIDES = [8, 16, 32]
SIZES = [(32,), (64,), (128,)]


def fpn_anchors(dtype=torch.float32, device="cpu"):
    anchors = frcnn_fast.generate_anchors_multilevel(
        FEATURES, STRIDES, SIZES, (0.5, 1.0, 2.0), 0.0, rounded=True, dtype=dtype, device=device
    )
    per_level = [h * w * 3 for h, w in FEATURES]
    return anchors, per_level


def random_rpn_outputs(seed, b, a, dtype=torch.float32, device="cpu", ties=False):
    g = torch.Generator().manual_seed(seed)
    objectness = torch.randn((b, a), generator=g, dtype=torch.float64)
    if ties:
        objectness = (objectness * 2).round() / 2  # many equal logits
    deltas = torch.randn((b, a, 4), generator=g, dtype=torch.float64) * 0.5
    return objectness.to(dtype=dtype, device=device), deltas.to(dtype=dtype, device=device)


def tv_rpn(pre, post, nms_thresh, score_thresh):
    rpn = RegionProposalNetwork(
        None, None, 0.7, 0.3, 256, 0.5, dict(training=pre, testing=pre),
        dict(training=post, testing=post), nms_thresh, score_thresh,
    )  # fmt: skip
    return rpn.eval()


@pytest.mark.parametrize(
    "pre,post,nms_thresh,score_thresh",
    [(50, 30, 0.7, 0.0), (1000, 1000, 0.5, 0.5), (5, 7, 0.7, 0.0)],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_torchvision_filter_proposals(pre, post, nms_thresh, score_thresh, seed):
    anchors, per_level = fpn_anchors()
    sizes = [(128, 160), (100, 77)]
    objectness, deltas = random_rpn_outputs(seed, 2, anchors.shape[0])
    coder = tv_utils.BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
    decoded = coder.decode(deltas.reshape(-1, 4), [anchors, anchors]).reshape(2, -1, 4)
    rpn = tv_rpn(pre, post, nms_thresh, score_thresh)
    tv_boxes, tv_scores = rpn.filter_proposals(decoded, objectness, sizes, per_level)
    boxes, scores = generate_proposals(
        objectness, deltas, anchors, sizes, pre_nms_top_n=pre, post_nms_top_n=post,
        nms_thresh=nms_thresh, min_size=1e-3, score_thresh=score_thresh,
        num_anchors_per_level=per_level,
    )  # fmt: skip
    for b in range(2):
        assert boxes[b].shape == tv_boxes[b].shape
        torch.testing.assert_close(boxes[b], tv_boxes[b], rtol=0, atol=1e-4)
        torch.testing.assert_close(scores[b], tv_scores[b], rtol=0, atol=0)


@st.composite
def rpn_inputs(draw):
    b = draw(st.integers(1, 3))
    sizes = [(draw(st.integers(8, 128)), draw(st.integers(8, 160))) for _ in range(b)]
    return dict(
        b=b,
        sizes=sizes,
        seed=draw(st.integers(0, 2**16)),
        ties=draw(st.booleans()),
        pre=draw(st.sampled_from([0, 3, 40, 5000])),
        post=draw(st.sampled_from([0, 5, 100])),
        nms_thresh=draw(st.sampled_from([0.0, 0.5, 0.7, 1.0])),
        min_size=draw(st.sampled_from([1e-3, 4.0, 16.0])),
        score_thresh=draw(st.sampled_from([0.0, 0.6])),
        levels=draw(st.booleans()),
        order=draw(st.sampled_from(["topk_first", "filter_first"])),
    )


@pytest.mark.parametrize("device", DEVICES)
@given(case=rpn_inputs())
def test_matches_reference_and_padded(device, case):
    anchors, per_level = fpn_anchors(torch.float64, device)
    objectness, deltas = random_rpn_outputs(
        case["seed"], case["b"], anchors.shape[0], torch.float64, device, case["ties"]
    )
    kw = dict(
        pre_nms_top_n=case["pre"], post_nms_top_n=case["post"], nms_thresh=case["nms_thresh"],
        min_size=case["min_size"], score_thresh=case["score_thresh"],
        num_anchors_per_level=per_level if case["levels"] else None, order=case["order"],
    )  # fmt: skip
    boxes, scores = generate_proposals(objectness, deltas, anchors, case["sizes"], **kw)
    rb, rs = R.generate_proposals(
        to_np(objectness), to_np(deltas), to_np(anchors), case["sizes"], **kw
    )
    for b in range(case["b"]):
        assert boxes[b].shape[0] == rb[b].shape[0], (b, boxes[b].shape, rb[b].shape)
        check_close(to_np(boxes[b]), rb[b], rtol=1e-9, atol=1e-9)
        check_close(to_np(scores[b]), rs[b], rtol=1e-12, atol=1e-15)
    pb, ps, pc = generate_proposals_padded(objectness, deltas, anchors, case["sizes"], **kw)
    assert pb.shape == (case["b"], case["post"], 4) and ps.shape == (case["b"], case["post"])
    for b in range(case["b"]):
        n = boxes[b].shape[0]
        assert int(pc[b]) == n
        assert torch.equal(pb[b, :n], boxes[b]) and torch.equal(ps[b, :n], scores[b])
        assert (pb[b, n:] == 0).all() and (ps[b, n:] == 0).all()


FLT_MAX = float(np.finfo(np.float32).max)
# Values a ranking gets wrong: NaN (ranked as -inf, tied with it), both infinities next to the
# largest finite values (which must stay distinct from them), signed zeros (equal).
SPECIAL = [float("nan"), float("inf"), float("-inf"), FLT_MAX, -FLT_MAX, 0.0, -0.0, 1.0, -1.0]


@st.composite
def rows_to_rank(draw):
    b, n = draw(st.integers(1, 3)), draw(st.integers(1, 40))
    kind = draw(st.sampled_from(["distinct", "ties", "special"]))
    if kind == "distinct":  # the CPU shortcut: no tie, no NaN
        keys = np.stack([np.random.default_rng(draw(st.integers(0, 2**16))).permutation(n)
                         for _ in range(b)]).astype(np.float32)  # fmt: skip
    else:
        pool = [0.5, 1.5, 2.5] if kind == "ties" else SPECIAL
        keys = np.array(draw(st.lists(st.sampled_from(pool), min_size=b * n, max_size=b * n)))
        keys = keys.astype(np.float32).reshape(b, n)
    return keys, draw(st.integers(0, n))


@given(case=rows_to_rank())
def test_top_is_the_stable_descending_order(case):
    # The reference's ranking, cut at k. Distinct keys take the CPU shortcut; ties at the
    # boundary or inside the k, NaN and the infinities take the exact path, the one CUDA runs.
    keys, k = case
    expected = np.stack([R.proposals._rank(row)[:k] for row in keys])
    assert _top(torch.as_tensor(keys), k).tolist() == expected.tolist()


def test_top_reads_nothing_on_the_host_off_cpu():
    # The padded form promises no host sync on CUDA: reading a meta tensor's value raises, so
    # a shortcut taken off CPU would fail here.
    keys = torch.empty((2, 50), device="meta")
    assert _top(keys, 7).shape == (2, 7)


@pytest.mark.parametrize("tie_at", ["boundary", "inside", "after"])
def test_top_shortcut_and_exact_path_agree_on_one_tie(tie_at):
    # One tie among otherwise distinct keys: at the k-th/k+1-th place (the set itself is
    # ambiguous), inside the k (their order is), or just after (harmless): each compared with
    # the reference on both sides of the shortcut.
    n, k = 30, 10
    keys = np.arange(n, 0, -1, dtype=np.float32)
    keys[{"boundary": k - 1, "inside": 4, "after": k}[tie_at]] -= 1.0  # equal to the next one
    keys = keys[None, ::-1].copy()  # ascending: the best are last, the first tied one wins
    expected = R.proposals._rank(keys[0])[:k]
    assert _top(torch.as_tensor(keys), k)[0].tolist() == expected.tolist()


@pytest.mark.parametrize("device", DEVICES)
def test_post_nms_cut_keeps_exactly_the_best_of_each_image(device):
    # 40 disjoint anchors per image, all surviving NMS, distinct scores: each image keeps its
    # own best `post`, counted `post`, in score order; a cut off by one would count post + 1
    # or write one image's extra box into the next image's first slot.
    post = 5
    cells = torch.arange(40, dtype=torch.float32)
    anchors = torch.stack([cells * 20, cells * 0, cells * 20 + 10, cells * 0 + 10], 1).to(device)
    g = torch.Generator().manual_seed(7)
    objectness = torch.randn((2, 40), generator=g).to(device)
    deltas = torch.zeros((2, 40, 4), device=device)
    kw = dict(pre_nms_top_n=40, post_nms_top_n=post, nms_thresh=0.5, min_size=1.0)
    pb, ps, pc = generate_proposals_padded(objectness, deltas, anchors, [(20, 800)] * 2, **kw)
    assert pc.tolist() == [post, post]
    for b in range(2):
        best = torch.argsort(objectness[b], descending=True)[:post]
        assert torch.equal(pb[b], anchors[best])
        assert torch.equal(ps[b], torch.sigmoid(objectness[b, best]))
    boxes, _ = generate_proposals(objectness, deltas, anchors, [(20, 800)] * 2, **kw)
    assert [x.shape[0] for x in boxes] == [post, post]


@pytest.mark.parametrize("device", DEVICES)
def test_edge_cases(device):
    anchors, per_level = fpn_anchors(device=device)
    objectness, deltas = random_rpn_outputs(0, 2, anchors.shape[0], device=device)
    kw = dict(pre_nms_top_n=100, post_nms_top_n=10, min_size=1e-3)
    # zero anchors
    boxes, scores = generate_proposals(
        objectness[:, :0], deltas[:, :0], anchors[:0], [(10, 10)] * 2, **kw
    )
    assert [b.shape for b in boxes] == [(0, 4), (0, 4)] and [s.shape for s in scores] == [
        (0,),
        (0,),
    ]
    pb, ps, pc = generate_proposals_padded(
        objectness[:, :0], deltas[:, :0], anchors[:0], [(10, 10)] * 2, **kw
    )
    assert pb.shape == (2, 10, 4) and (pc == 0).all()
    # an image of size 0: every box is clipped to a point and dropped
    boxes, _ = generate_proposals(objectness, deltas, anchors, [(0, 0), (64, 64)], **kw)
    assert boxes[0].shape == (0, 4) and boxes[1].shape[0] == 10
    # no images
    boxes, scores = generate_proposals(objectness[:0], deltas[:0], anchors, [], **kw)
    assert boxes == [] and scores == []


def test_bad_input():
    anchors, per_level = fpn_anchors()
    objectness, deltas = random_rpn_outputs(0, 2, anchors.shape[0])
    kw = dict(pre_nms_top_n=10, post_nms_top_n=10, min_size=1e-3)
    sizes = [(64, 64)] * 2
    with pytest.raises(ValueError, match=r"deltas must have shape \[B, A, 4\]"):
        generate_proposals(objectness, deltas[:1], anchors, sizes, **kw)
    with pytest.raises(ValueError, match="image_sizes has 1 entries but objectness has 2"):
        generate_proposals(objectness, deltas, anchors, sizes[:1], **kw)
    with pytest.raises(ValueError, match="anchors must have A"):
        generate_proposals(objectness, deltas, anchors[:-1], sizes, **kw)
    with pytest.raises(ValueError, match=r"nms_thresh must be in \[0, 1\]"):
        generate_proposals(objectness, deltas, anchors, sizes, nms_thresh=1.5, **kw)
    with pytest.raises(ValueError, match="num_anchors_per_level must sum"):
        generate_proposals(objectness, deltas, anchors, sizes, num_anchors_per_level=[5], **kw)
    with pytest.raises(ValueError, match="pre_nms_top_n must be >= 0"):
        generate_proposals(objectness, deltas, anchors, sizes, pre_nms_top_n=-1,
                           post_nms_top_n=1, min_size=0.0)  # fmt: skip
    with pytest.raises(ValueError, match="order must be one of"):
        generate_proposals(objectness, deltas, anchors, sizes, order="bogus", **kw)
