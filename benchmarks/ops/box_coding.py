"""Faster R-CNN box coding: encode_boxes / decode_boxes vs torchvision's ``BoxCoder``.

torchvision: ``BoxCoder(weights).encode_single(targets, references)`` (note the argument order:
target first) and ``BoxCoder(weights).decode_single(deltas, references)``.
"""

import math
from functools import partial

from ..data import jitter_boxes, random_boxes, random_deltas
from ..registry import Case, OpBench, fmt_count, register

SIZES = (1_000, 20_000, 200_000)
RPN_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
ROI_HEAD_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
CLAMP = math.log(1000.0 / 16)


def _box_coder(weights):
    from torchvision.models.detection._utils import BoxCoder

    return BoxCoder(weights, bbox_xform_clip=CLAMP)


# --- encode_boxes ---------------------------------------------------------------------------
def _encode_inputs(case, rng):
    references = random_boxes(rng, case.params["n"])  # anchors / proposals
    return {"references": references, "targets": jitter_boxes(rng, references)}  # matched GT


def _encode_ours(ctx):
    i = ctx.inputs
    return partial(ctx.lib.encode_boxes, i["references"], i["targets"], RPN_WEIGHTS)


def _encode_tv(ctx):
    i = ctx.inputs
    return partial(_box_coder(RPN_WEIGHTS).encode_single, i["targets"], i["references"])


register(
    OpBench(
        name="encode_boxes",
        family="box_coding",
        size_unit="boxes",
        cases=[Case(fmt_count(n), n, dict(n=n)) for n in SIZES],
        make_inputs=_encode_inputs,
        reference=_encode_ours,
        frcnn=_encode_ours,
        torchvision=_encode_tv,
        torchvision_name="BoxCoder((1,1,1,1)).encode_single",
        atol_scale=10.0,
        description="deltas of targets w.r.t. references, weights (1,1,1,1) [N,4] x [N,4] -> [N,4]",
        order=30,
    )
)


# --- decode_boxes ---------------------------------------------------------------------------
def _decode_cases():
    cases = [Case(f"{fmt_count(n)}x4", n, dict(n=n, k=1, weights=RPN_WEIGHTS)) for n in SIZES]
    # Second stage: class-specific deltas for 91 COCO classes, weights (10, 10, 5, 5).
    cases.append(Case("1,000x364", 1_000 * 91, dict(n=1_000, k=91, weights=ROI_HEAD_WEIGHTS)))
    return cases


def _decode_inputs(case, rng):
    p = case.params
    return {
        "deltas": random_deltas(rng, p["n"], p["k"], weights=p["weights"]),
        "references": random_boxes(rng, p["n"]),
    }


def _decode_ours(ctx):
    i = ctx.inputs
    return partial(ctx.lib.decode_boxes, i["deltas"], i["references"], ctx.params["weights"], CLAMP)


def _decode_tv(ctx):
    i = ctx.inputs
    return partial(_box_coder(ctx.params["weights"]).decode_single, i["deltas"], i["references"])


register(
    OpBench(
        name="decode_boxes",
        family="box_coding",
        size_unit="boxes",
        cases=_decode_cases(),
        make_inputs=_decode_inputs,
        reference=_decode_ours,
        frcnn=_decode_ours,
        torchvision=_decode_tv,
        torchvision_name="BoxCoder(weights).decode_single",
        atol_scale=1000.0,
        description="apply deltas [N,4K] to references [N,4] -> [N,4K] (K=91: weights (10,10,5,5))",
        order=31,
    )
)
