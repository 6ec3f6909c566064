"""Faster R-CNN box coding: encode_boxes / decode_boxes vs torchvision's ``BoxCoder``.

torchvision: ``BoxCoder(weights).encode_single(targets, references)`` (note the argument order:
target first) and ``BoxCoder(weights).decode_single(deltas, references)``.

Flops follow the reference's formulas, an ``exp`` or a ``log`` counted as 1 (a vectorised one
costs ~10-20 multiply-adds, but at ~1 flop per byte moved both ops are memory-bound either way).
"""

import math
from functools import partial

from ..data import jitter_boxes, random_boxes, random_deltas
from ..registry import Case, lib_call, register_op, sized_cases
from ..roofline import Work

SIZES = (1_000, 20_000, 200_000)
RPN_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
ROI_HEAD_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
CLAMP = math.log(1000.0 / 16)
# Centre and size of a box: 2 sub (w, h) + 2 multiply-adds (x1 + 0.5 w, y1 + 0.5 h).
CENTRE_FLOPS = 6
# One encoded box: dx = wx (tcx - rcx) / rw: 3, twice; dw = ww log(tw / rw): 3, twice.
ENCODE_FLOPS = 12
# One decoded box: dx / wx, * rw, + rcx: 3, twice; min(dw / ww, clamp), exp, * rw: 4, twice;
# the corners cx -+ 0.5 w: 2 each.
DECODE_FLOPS = 22


def _box_coder(weights):
    from torchvision.models.detection._utils import BoxCoder

    return BoxCoder(weights, bbox_xform_clip=CLAMP)


# --- encode_boxes ---------------------------------------------------------------------------
def _encode_inputs(case, rng):
    references = random_boxes(rng, case.params["n"])  # anchors / proposals
    return {"references": references, "targets": jitter_boxes(rng, references)}  # matched GT


def _encode_work(case, inputs, expected):
    n = case.params["n"]  # two boxes read, one box of deltas written
    return Work(values=12 * n, flops=(2 * CENTRE_FLOPS + ENCODE_FLOPS) * n)


def _encode_tv(ctx):
    i = ctx.inputs
    return partial(_box_coder(RPN_WEIGHTS).encode_single, i["targets"], i["references"])


register_op(
    "encode_boxes",
    lib_call("encode_boxes", ["references", "targets"], RPN_WEIGHTS),
    torchvision=_encode_tv,
    torchvision_name="BoxCoder((1,1,1,1)).encode_single",
    family="box_coding",
    size_unit="boxes",
    cases=sized_cases(SIZES),
    make_inputs=_encode_inputs,
    work=_encode_work,
    atol_scale=10.0,
    description="deltas of targets w.r.t. references, weights (1,1,1,1) [N,4] x [N,4] -> [N,4]",
    order=30,
)


# --- decode_boxes ---------------------------------------------------------------------------
def _decode_cases():
    cases = sized_cases(SIZES, "x4", k=1, weights=RPN_WEIGHTS)
    # Second stage: class-specific deltas for 91 COCO classes, weights (10, 10, 5, 5).
    cases.append(Case("1,000x364", 1_000 * 91, dict(n=1_000, k=91, weights=ROI_HEAD_WEIGHTS)))
    return cases


def _decode_inputs(case, rng):
    p = case.params
    return {
        "deltas": random_deltas(rng, p["n"], p["k"], weights=p["weights"]),
        "references": random_boxes(rng, p["n"]),
    }


def _decode_work(case, inputs, expected):
    n, k = case.params["n"], case.params["k"]  # deltas and references read, boxes written
    return Work(values=8 * n * k + 4 * n, flops=CENTRE_FLOPS * n + DECODE_FLOPS * n * k)


def _decode_ours(ctx):
    i = ctx.inputs
    return partial(ctx.lib.decode_boxes, i["deltas"], i["references"], ctx.params["weights"], CLAMP)


def _decode_tv(ctx):
    i = ctx.inputs
    return partial(_box_coder(ctx.params["weights"]).decode_single, i["deltas"], i["references"])


register_op(
    "decode_boxes",
    _decode_ours,
    torchvision=_decode_tv,
    torchvision_name="BoxCoder(weights).decode_single",
    family="box_coding",
    size_unit="boxes",
    cases=_decode_cases(),
    make_inputs=_decode_inputs,
    work=_decode_work,
    atol_scale=1000.0,
    description="apply deltas [N,4K] to references [N,4] -> [N,4K] (K=91: weights (10,10,5,5))",
    order=31,
)
