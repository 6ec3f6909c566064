"""Pairwise IoU, ``[N, 4] x [M, 4] -> [N, M]``, against ``torchvision.ops.box_iou``."""

from functools import partial

from ..data import grid_anchors_np, random_boxes
from ..registry import Case, OpBench, fmt_count, register


def _case(n, m, what, **params):
    return Case(f"{fmt_count(n)}x{fmt_count(m)}", n * m, dict(n=n, m=m, what=what, **params))


CASES = [
    # The tutorial RPN's target assignment: 50x50 feature map x 9 anchors against 2 ground truths.
    _case(22_500, 2, "anchors of a 50x50 map (stride 16) x GT", anchors=(50, 50, 16)),
    # FPN anchors (a subset of ~200k) against a crowded image's ground truths.
    _case(20_000, 100, "FPN anchors x GT"),
    _case(1_000, 1_000, "proposals x proposals"),
    _case(4_000, 4_000, "large square"),
]


def make_inputs(case, rng):
    p = case.params
    if "anchors" in p:
        h, w, stride = p["anchors"]
        boxes1 = grid_anchors_np(h, w, stride)
    else:
        boxes1 = random_boxes(rng, p["n"])
    assert boxes1.shape[0] == p["n"]
    return {"boxes1": boxes1, "boxes2": random_boxes(rng, p["m"], min_side=16.0)}


def _ours(ctx):
    # ctx.lib is frcnn_fast.reference (NumPy) or frcnn_fast (torch): same signature.
    return partial(ctx.lib.box_iou, ctx.inputs["boxes1"], ctx.inputs["boxes2"])


def _torchvision(ctx):
    import torchvision

    return partial(torchvision.ops.box_iou, ctx.inputs["boxes1"], ctx.inputs["boxes2"])


register(
    OpBench(
        name="box_iou",
        family="box_iou",
        size_unit="box pairs",
        cases=CASES,
        make_inputs=make_inputs,
        reference=_ours,
        frcnn=_ours,
        torchvision=_torchvision,
        torchvision_name="torchvision.ops.box_iou",
        atol_scale=1.0,
        description="pairwise IoU [N,4] x [M,4] -> [N,M]",
        order=10,
    )
)
