"""Anchor grid of one feature map vs torchvision's ``AnchorGenerator``.

Both sides compute the same thing: frcnn_fast with ``offset=0.0, rounded=True`` reproduces
torchvision (base anchors rounded half-to-even, centres at ``j * stride``). torchvision is timed
on an ``ImageList`` whose image is ``(H*stride, W*stride)`` with one ``[1, 1, H, W]`` feature map
(both are zero-stride expanded views: only their shapes matter).
"""

from functools import partial

from ..registry import Case, fmt_count, register_op
from ..roofline import Work

OFFSET = 0.0
ROUNDED = True
RATIOS = (0.5, 1.0, 2.0)


def _case(h, w, stride, sizes, what):
    num = h * w * len(sizes) * len(RATIOS)
    label = f"{h}x{w} s{stride} A{len(sizes) * len(RATIOS)}"
    return Case(
        label, num, dict(h=h, w=w, stride=stride, sizes=sizes, what=what, anchors=fmt_count(num))
    )


CASES = [
    _case(13, 17, 64, (512,), "FPN P6 of an 800x1088 image"),
    _case(50, 50, 16, (128, 256, 512), "the tutorial RPN: 800x800 image, VGG16 conv5"),
    _case(200, 272, 4, (32,), "FPN P2 of an 800x1088 image"),
]


def _no_inputs(case, rng):
    return {}


def _work(case, inputs, expected):
    # Nothing read; 4 coordinates written per anchor, each a base corner plus a shift (the
    # shifts, one multiply per row and column, and the few base anchors are not counted).
    return Work(values=4 * case.size, flops=4 * case.size)


def _ours(ctx):
    # The kernel (ctx.device set) also takes the dtype and device; the reference does not.
    where = {} if ctx.device is None else dict(dtype=ctx.dtype, device=ctx.device)
    p = ctx.params
    grid = ((p["h"], p["w"]), p["stride"], p["sizes"], RATIOS, OFFSET)
    return partial(ctx.lib.generate_anchors, *grid, rounded=ROUNDED, **where)


def _torchvision(ctx):
    import torch
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.image_list import ImageList

    p = ctx.params
    h, w, s = p["h"], p["w"], p["stride"]
    generator = AnchorGenerator(sizes=(p["sizes"],), aspect_ratios=(RATIOS,))
    image = torch.zeros((), dtype=ctx.dtype, device=ctx.device).expand(1, 3, h * s, w * s)
    feature = torch.zeros((), dtype=ctx.dtype, device=ctx.device).expand(1, 1, h, w)
    images = ImageList(image, [(h * s, w * s)])

    def run():
        return generator(images, [feature])[0]

    return run


register_op(
    "generate_anchors",
    _ours,
    torchvision=_torchvision,
    torchvision_name="AnchorGenerator (one level)",
    family="anchors",
    size_unit="anchors",
    cases=CASES,
    make_inputs=_no_inputs,
    work=_work,
    atol_scale=1000.0,
    description="anchors of one feature map, offset 0, rounded base anchors -> [H*W*A,4]",
    order=40,
)
