"""Elementwise box ops: area, format conversion, clipping, small-box removal, aligned IoU.

Each is a few operations per box on 4 coordinates: memory-bound by a wide margin. Flops per
box follow the reference's formulas (a clamp at 0 or to the image counts 1 per bound).
"""

from ..data import jitter_boxes, random_boxes
from ..registry import exact_compare, lib_call, register_op, sized_cases, torchvision_call
from ..roofline import Work
from .box_iou import AREA_FLOPS, IOU_FLOPS

SIZES = (1_000, 20_000, 200_000)
# Proposal-layer numbers: clip to an 800x1088 image; min_size 16 px (+1/128 so that no box of
# the 1/64 px grid sits exactly on the threshold).
IMAGE_SIZE = (800.0, 1088.0)
MIN_SIZE = 16.0 + 1.0 / 128.0


def _boxes(case, rng):
    return {"boxes": random_boxes(rng, case.params["n"])}


def _boxes_around_image(case, rng):
    # Decoded proposals stick out of the image on every side.
    return {"boxes": random_boxes(rng, case.params["n"], extent=(-150.0, 1250.0))}


def _box_pairs(case, rng):
    boxes1 = random_boxes(rng, case.params["n"])
    return {"boxes1": boxes1, "boxes2": jitter_boxes(rng, boxes1)}


def _per_box(values, flops):
    """Work of ``values`` values read + written and ``flops`` flops per box."""
    return lambda case, inputs, expected: Work(values * case.params["n"], flops * case.params["n"])


def _kept_indices(case, inputs, expected):
    # 4 coordinates read; 2 widths and 2 comparisons per box; one int64 per kept box written.
    return Work(4 * case.params["n"], 4 * case.params["n"], fixed_bytes=8 * expected.size)


def _box_op(name, make_inputs, extra, work, description, order, **fields):
    inputs = ["boxes1", "boxes2"] if make_inputs is _box_pairs else ["boxes"]
    register_op(
        name,
        lib_call(name, inputs, *extra),
        family="box_ops",
        size_unit="box pairs" if len(inputs) == 2 else "boxes",
        cases=sized_cases(SIZES),
        make_inputs=make_inputs,
        work=work,
        description=description,
        order=order,
        **fields,
    )


_box_op(
    "box_area",
    _boxes,
    (),
    _per_box(4 + 1, 2 + 2 + 1),  # widths, clamps at 0, product
    "box area [N,4] -> [N]",
    20,
    torchvision=torchvision_call("torchvision.ops.box_area", ["boxes"]),
)
_box_op(
    "box_convert",
    _boxes,
    ("xyxy", "cxcywh"),
    _per_box(4 + 4, 2 + 4),  # widths, centres (add, halve)
    "xyxy -> cxcywh [N,4] -> [N,4]",
    21,
    atol_scale=1000.0,
    torchvision=torchvision_call("torchvision.ops.box_convert", ["boxes"], "xyxy", "cxcywh"),
    torchvision_name='torchvision.ops.box_convert(.., "xyxy", "cxcywh")',
)
_box_op(
    "clip_boxes",
    _boxes_around_image,
    (IMAGE_SIZE,),
    _per_box(4 + 4, 8),  # a min and a max per coordinate
    "clip to an 800x1088 image [N,4] -> [N,4]",
    22,
    atol_scale=1000.0,
    torchvision=torchvision_call(
        "torchvision.ops.clip_boxes_to_image", ["boxes"], tuple(int(v) for v in IMAGE_SIZE)
    ),
)
_box_op(
    "remove_small_boxes",
    _boxes,
    (MIN_SIZE,),
    _kept_indices,
    "indices of boxes with w, h >= 16 px [N,4] -> [K] int64",
    23,
    compare=exact_compare,
    torchvision=torchvision_call("torchvision.ops.remove_small_boxes", ["boxes"], MIN_SIZE),
)
_box_op(  # no torchvision twin
    "box_iou_aligned",
    _box_pairs,
    (),
    _per_box(8 + 1, IOU_FLOPS + 2 * AREA_FLOPS),
    "IoU of row i with row i [N,4] x [N,4] -> [N]",
    24,
)
