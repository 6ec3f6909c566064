"""Pairwise IoU, ``[N, 4] x [M, 4] -> [N, M]``, against ``torchvision.ops.box_iou``."""

from ..data import grid_anchors_np, random_boxes
from ..registry import Case, fmt_count, lib_call, register_op, torchvision_call
from ..roofline import Work

# Flops of one IoU once both areas are known: 2 max + 2 min + 2 sub + 2 clamps at 0 (the
# intersection's sides), its product, union = a1 + a2 - inter (2), the division and the
# empty-union test: 12. An area is 2 sub + 1 mul (clamps aside), once per box.
IOU_FLOPS = 12
AREA_FLOPS = 3


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


def work(case, inputs, expected):
    # The N x M output is written once and dominates the bytes (4 values read per box).
    n, m = case.params["n"], case.params["m"]
    return Work(values=4 * (n + m) + n * m, flops=IOU_FLOPS * n * m + AREA_FLOPS * (n + m))


register_op(
    "box_iou",
    lib_call("box_iou", ["boxes1", "boxes2"]),
    torchvision=torchvision_call("torchvision.ops.box_iou", ["boxes1", "boxes2"]),
    family="box_iou",
    size_unit="box pairs",
    cases=CASES,
    make_inputs=make_inputs,
    work=work,
    description="pairwise IoU [N,4] x [M,4] -> [N,M]",
    order=10,
)
