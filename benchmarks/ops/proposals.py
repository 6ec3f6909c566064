"""The proposal layer at test time on fasterrcnn_resnet50_fpn's sizes: FPN anchors of an 800 x
1333 image (levels 200x336, 100x168, 50x84, 25x42 and 13x21, three anchors per position:
268,569), 1,000 candidates per level before NMS and 1,000 proposals per image after (its
testing defaults), NMS 0.7, min size 1e-3, for 1 and 8 images.

``generate_proposals`` (per-image lists) against torchvision's ``RegionProposalNetwork``: its
``box_coder.decode`` of every anchor followed by ``filter_proposals``, the two calls its
``forward`` makes between the head's outputs and the proposals (ours decodes only the
candidates, inside the call). Both outputs are concatenated per image as ``[sum K, 5]`` (boxes,
score) for the check against the reference; the concatenation is inside the timed call of
both. ``generate_proposals_padded`` has no torchvision twin; the list form is the padded form
cut at the counts (one host sync), so their times differ by that.

Work: the objectness logits, the deltas and the anchors read once, the proposals written
(5 values each). Flops, per candidate (the per-level top 1,000): decode (22, and 6 for its
anchor), clip and the size test (8), the sigmoid (1), the NMS areas (3), and one IoU (12) per
candidate NMS removes (see nms.py: the tests among kept boxes are not compulsory).
"""

from __future__ import annotations

import numpy as np

from ..registry import Case, OpBench, register
from ..roofline import Work
from .box_iou import AREA_FLOPS, IOU_FLOPS
from .match import FPN_LEVELS, NUM_ANCHORS, fpn_anchors

IMAGE = (800, 1333)
PRE, POST, NMS_THRESH, MIN_SIZE = 1000, 1000, 0.7, 1e-3
PER_LEVEL = [h * w * 3 for (h, w), _, _ in FPN_LEVELS]
CANDIDATE_FLOPS = 22 + 6 + 8 + 1 + AREA_FLOPS
KW = dict(
    pre_nms_top_n=PRE, post_nms_top_n=POST, nms_thresh=NMS_THRESH, min_size=MIN_SIZE,
    num_anchors_per_level=PER_LEVEL,
)  # fmt: skip


def _cases():
    return [Case(f"{b} img x {NUM_ANCHORS:,}", b * NUM_ANCHORS, dict(images=b)) for b in (1, 8)]


def _logits(rng):
    """Distinct logits in [-4, 4], spaced so that their float32 sigmoids stay distinct too:
    with ties, the order of equal scores is each implementation's own (torchvision's sorts
    are not stable), and the check would compare arbitrary orders."""
    return rng.permutation(np.linspace(-4.0, 4.0, NUM_ANCHORS))


def make_inputs(case, rng):
    b = case.params["images"]
    deltas = rng.normal(0.0, 1.0, (b, NUM_ANCHORS, 4)) * np.array([0.1, 0.1, 0.2, 0.2])
    return {
        "objectness": np.stack([_logits(rng) for _ in range(b)]),
        "deltas": deltas,
        "anchors": fpn_anchors(),
    }


def _sizes(ctx):
    return [IMAGE] * ctx.params["images"]


def _args(ctx):
    i = ctx.inputs
    return i["objectness"], i["deltas"], i["anchors"], _sizes(ctx)


def _rows(boxes, scores, cat):
    return cat([cat([b, s[:, None]], 1) for b, s in zip(boxes, scores)], 0)


def _reference(ctx):
    return lambda: _rows(*ctx.lib.generate_proposals(*_args(ctx), **KW), np.concatenate)


def _ours(ctx):
    import torch

    fn = ctx.lib.detection.generate_proposals
    return lambda: _rows(*fn(*_args(ctx), **KW), torch.cat)


def _torchvision(ctx):
    import torch
    from torchvision.models.detection.rpn import RegionProposalNetwork

    rpn = RegionProposalNetwork(
        None, None, 0.7, 0.3, 256, 0.5, dict(training=PRE, testing=PRE),
        dict(training=POST, testing=POST), NMS_THRESH,
    ).eval()  # fmt: skip
    objectness, deltas, anchors, sizes = _args(ctx)
    b = len(sizes)

    def call():
        decoded = rpn.box_coder.decode(deltas.reshape(-1, 4), [anchors] * b).reshape(b, -1, 4)
        return _rows(*rpn.filter_proposals(decoded, objectness, sizes, PER_LEVEL), torch.cat)

    return call


def _reference_padded(ctx):
    def call():
        out = np.zeros((ctx.params["images"], POST, 5))
        for i, (b, s) in enumerate(zip(*ctx.lib.generate_proposals(*_args(ctx), **KW))):
            out[i, : len(s)] = np.concatenate([b, s[:, None]], 1)
        return out

    return call


def _ours_padded(ctx):
    import torch

    fn = ctx.lib.detection.generate_proposals_padded

    def call():
        boxes, scores, _ = fn(*_args(ctx), **KW)
        return torch.cat([boxes, scores[..., None]], -1)

    return call


def _work(case, inputs, expected):
    b = case.params["images"]
    candidates = b * sum(min(PRE, n) for n in PER_LEVEL)
    kept = int((np.abs(expected).reshape(-1, 5).sum(1) > 0).sum())
    flops = CANDIDATE_FLOPS * candidates + IOU_FLOPS * (candidates - kept)
    return Work(values=5 * b * NUM_ANCHORS + 4 * NUM_ANCHORS + 5 * kept, flops=flops)


FIELDS = dict(
    family="proposals",
    size_unit="anchors",
    cases=_cases(),
    make_inputs=make_inputs,
    atol_scale=1000.0,  # box coordinates up to 1,333 px
    work=_work,
    order=46,
)
register(
    OpBench(
        "generate_proposals",
        reference=_reference,
        frcnn=_ours,
        torchvision=_torchvision,
        torchvision_name="torchvision RegionProposalNetwork: box_coder.decode + filter_proposals",
        description="RPN proposals at test time (FPN 800x1333, 1000/1000 per level) -> per image",
        **FIELDS,
    )
)
register(
    OpBench(
        "generate_proposals_padded",
        reference=_reference_padded,
        frcnn=_ours_padded,
        description="the same, fixed shapes [B, 1000, 4] and no host sync",
        **FIELDS,
    )
)
