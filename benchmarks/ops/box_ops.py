"""Elementwise box ops: area, format conversion, clipping, small-box removal, aligned IoU."""

from functools import partial

from ..data import jitter_boxes, random_boxes
from ..registry import Case, OpBench, exact_compare, fmt_count, register

SIZES = (1_000, 20_000, 200_000)
# Proposal-layer numbers: clip to an 800x1088 image; min_size 16 px (+1/128 so that no box of
# the 1/64 px grid sits exactly on the threshold).
IMAGE_SIZE = (800.0, 1088.0)
MIN_SIZE = 16.0 + 1.0 / 128.0


def _cases():
    return [Case(fmt_count(n), n, dict(n=n)) for n in SIZES]


def _boxes(case, rng):
    return {"boxes": random_boxes(rng, case.params["n"])}


def _boxes_around_image(case, rng):
    # Decoded proposals stick out of the image on every side.
    return {"boxes": random_boxes(rng, case.params["n"], extent=(-150.0, 1250.0))}


def _box_pairs(case, rng):
    boxes1 = random_boxes(rng, case.params["n"])
    return {"boxes1": boxes1, "boxes2": jitter_boxes(rng, boxes1)}


def _tv(name, input_names, *extra_args):
    """Thunk factory calling ``torchvision.ops.<name>(*inputs, *extra_args)``."""

    def factory(ctx):
        import torchvision.ops

        return partial(
            getattr(torchvision.ops, name), *(ctx.inputs[k] for k in input_names), *extra_args
        )

    return factory


# --- box_area -------------------------------------------------------------------------------
register(
    OpBench(
        name="box_area",
        family="box_ops",
        size_unit="boxes",
        cases=_cases(),
        make_inputs=_boxes,
        reference=lambda ctx: partial(ctx.lib.box_area, ctx.inputs["boxes"]),
        frcnn=lambda ctx: partial(ctx.lib.box_area, ctx.inputs["boxes"]),
        torchvision=_tv("box_area", ["boxes"]),
        torchvision_name="torchvision.ops.box_area",
        atol_scale=1.0,
        description="box area [N,4] -> [N]",
        order=20,
    )
)

# --- box_convert xyxy -> cxcywh -------------------------------------------------------------
register(
    OpBench(
        name="box_convert",
        family="box_ops",
        size_unit="boxes",
        cases=_cases(),
        make_inputs=_boxes,
        reference=lambda ctx: partial(ctx.lib.box_convert, ctx.inputs["boxes"], "xyxy", "cxcywh"),
        frcnn=lambda ctx: partial(ctx.lib.box_convert, ctx.inputs["boxes"], "xyxy", "cxcywh"),
        torchvision=_tv("box_convert", ["boxes"], "xyxy", "cxcywh"),
        torchvision_name='torchvision.ops.box_convert(.., "xyxy", "cxcywh")',
        atol_scale=1000.0,
        description="xyxy -> cxcywh [N,4] -> [N,4]",
        order=21,
    )
)

# --- clip_boxes -----------------------------------------------------------------------------
register(
    OpBench(
        name="clip_boxes",
        family="box_ops",
        size_unit="boxes",
        cases=_cases(),
        make_inputs=_boxes_around_image,
        reference=lambda ctx: partial(ctx.lib.clip_boxes, ctx.inputs["boxes"], IMAGE_SIZE),
        frcnn=lambda ctx: partial(ctx.lib.clip_boxes, ctx.inputs["boxes"], IMAGE_SIZE),
        torchvision=_tv("clip_boxes_to_image", ["boxes"], tuple(int(v) for v in IMAGE_SIZE)),
        torchvision_name="torchvision.ops.clip_boxes_to_image",
        atol_scale=1000.0,
        description="clip to an 800x1088 image [N,4] -> [N,4]",
        order=22,
    )
)

# --- remove_small_boxes ---------------------------------------------------------------------
register(
    OpBench(
        name="remove_small_boxes",
        family="box_ops",
        size_unit="boxes",
        cases=_cases(),
        make_inputs=_boxes,
        reference=lambda ctx: partial(ctx.lib.remove_small_boxes, ctx.inputs["boxes"], MIN_SIZE),
        frcnn=lambda ctx: partial(ctx.lib.remove_small_boxes, ctx.inputs["boxes"], MIN_SIZE),
        torchvision=_tv("remove_small_boxes", ["boxes"], MIN_SIZE),
        torchvision_name="torchvision.ops.remove_small_boxes",
        compare=exact_compare,
        description="indices of boxes with w, h >= 16 px [N,4] -> [K] int64",
        order=23,
    )
)

# --- box_iou_aligned (no torchvision twin) --------------------------------------------------
register(
    OpBench(
        name="box_iou_aligned",
        family="box_ops",
        size_unit="box pairs",
        cases=_cases(),
        make_inputs=_box_pairs,
        reference=lambda ctx: partial(
            ctx.lib.box_iou_aligned, ctx.inputs["boxes1"], ctx.inputs["boxes2"]
        ),
        frcnn=lambda ctx: partial(
            ctx.lib.box_iou_aligned, ctx.inputs["boxes1"], ctx.inputs["boxes2"]
        ),
        torchvision=None,
        atol_scale=1.0,
        description="IoU of row i with row i [N,4] x [N,4] -> [N]",
        order=24,
    )
)
