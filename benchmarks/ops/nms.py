"""Non-maximum suppression: nms on scattered and clustered (RPN-like) boxes, batched_nms over
80 classes and over 8 images. Scores are distinct so that torchvision's answer is defined the
same way as ours (it does not promise an order for ties).

Work of NMS: the boxes and scores (and the int64 ``idxs``) read once, the kept indices written
(int64). Flops: only what no exact NMS can skip: the areas (3 per box) and one IoU (12) per
suppressed box, against the box that suppresses it. The K (K - 1) / 2 tests among kept boxes
are not compulsory: a kernel that prunes pairs far apart skips most of them (ours looks kept
boxes up in a grid; counting those tests gave it a fraction above 1 on 1,000 scattered boxes).
Nor is the sort (comparisons, and the radix sort ours uses does none). So the bound is the bandwidth's, and what NMS really waits on,
its chain of decisions, no roofline shows: read the fraction as "how far from free".
"""

import dataclasses
from functools import partial

import numpy as np

from ..data import jitter_boxes, random_boxes
from ..registry import Case, exact_compare, register_op, sized_cases
from ..roofline import Work
from .box_iou import AREA_FLOPS, IOU_FLOPS

IOU = 0.7
NMS_SIZES = (1_000, 6_000, 12_000, 30_000, 100_000)
# The NumPy reference is a greedy loop, O(N x kept): about 3 s at 12,000 scattered boxes. Larger
# cases are checked against torchvision (float64) instead and the reference is not timed.
REFERENCE_MAX = 12_000


def _scores(rng, n):
    return (rng.permutation(n) + 1.0) / (n + 1.0)


def _scattered(case, rng):
    n = case.params["n"]
    return {"boxes": random_boxes(rng, n), "scores": _scores(rng, n)}


def _clustered(case, rng):
    """RPN proposals: many boxes jittered around a few objects (100 per 1,000 boxes... at most 50)."""
    n = case.params["n"]
    objects = random_boxes(rng, max(5, min(50, n // 200)), min_side=32.0, max_side=400.0)
    around = objects[rng.integers(0, len(objects), n)]
    return {
        "boxes": jitter_boxes(rng, around, centre_sigma=0.08, log_size_sigma=0.15),
        "scores": _scores(rng, n),
    }


def _with_groups(make, groups):
    def inputs(case, rng):
        d = make(case, rng)
        d["idxs"] = rng.integers(0, groups, len(d["scores"])).astype(np.float64)
        return d

    return inputs


def _per_image(case, rng):
    images, per = case.params["images"], case.params["per"]
    parts = [_clustered(Case("", per, dict(n=per)), rng) for _ in range(images)]
    return {
        "boxes": np.concatenate([p["boxes"] for p in parts]),
        "scores": _scores(rng, images * per),
        "idxs": np.repeat(np.arange(images), per).astype(np.float64),
    }


def _idxs(ctx):
    v = ctx.inputs["idxs"]
    return v.astype(np.int64) if isinstance(v, np.ndarray) else v.long()


def _nms(ctx):
    return partial(ctx.lib.nms, ctx.inputs["boxes"], ctx.inputs["scores"], IOU)


def _batched(ctx):
    return partial(ctx.lib.batched_nms, ctx.inputs["boxes"], ctx.inputs["scores"], _idxs(ctx), IOU)


def _torchvision(fn):
    def factory(ctx):
        import torchvision.ops

        return fn(dataclasses.replace(ctx, lib=torchvision.ops))

    return factory


def greedy_work(inputs, kept):
    """:class:`Work` of NMS over ``inputs`` (boxes, scores, optional ``idxs``) keeping the
    indices ``kept`` (see the module docstring)."""
    n, k = len(inputs["scores"]), len(kept)
    index_bytes = 8 * (k + (n if "idxs" in inputs else 0))
    return Work(values=5 * n, flops=AREA_FLOPS * n + IOU_FLOPS * (n - k), fixed_bytes=index_bytes)


def _work(case, inputs, expected):
    return greedy_work(inputs, expected)


NMS_FIELDS = dict(
    family="nms",
    size_unit="boxes",
    compare=exact_compare,
    work=_work,
)


def _nms_bench(name, make, description, order):
    register_op(
        name,
        _nms,
        torchvision=_torchvision(_nms),
        torchvision_name="torchvision.ops.nms",
        cases=sized_cases(NMS_SIZES),
        make_inputs=make,
        description=description,
        order=order,
        reference_max_size=REFERENCE_MAX,
        trusted=_torchvision(_nms),
        **NMS_FIELDS,
    )


_nms_bench(
    "nms",
    _scattered,
    f"scattered boxes (1000x1000 px, sides 4-400 px), IoU {IOU} [N,4] -> [K] int64",
    40,
)
_nms_bench(
    "nms_clustered", _clustered, f"RPN-like: boxes jittered around a few objects, IoU {IOU}", 41
)


def _batched_inputs(case, rng):
    if "images" in case.params:
        return _per_image(case, rng)
    return _with_groups(_clustered, 80)(case, rng)


register_op(
    "batched_nms",
    _batched,
    torchvision=_torchvision(_batched),
    torchvision_name="torchvision.ops.batched_nms",
    cases=sized_cases((20_000, 100_000), " / 80 cls", series="80 classes")
    + [Case("8 img x 2,000", 16_000, dict(images=8, per=2_000), "8 images")],
    make_inputs=_batched_inputs,
    description=f"NMS per class (80 classes) or per image (idxs = image), IoU {IOU}",
    order=42,
    reference_max_size=20_000,
    trusted=_torchvision(_batched),
    **NMS_FIELDS,
)
