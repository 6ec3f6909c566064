"""Non-maximum suppression: nms on scattered and clustered (RPN-like) boxes, batched_nms over
80 classes and over 8 images. Scores are distinct so that torchvision's answer is defined the
same way as ours (it does not promise an order for ties)."""

from functools import partial

import numpy as np

from ..data import jitter_boxes, random_boxes
from ..registry import Case, OpBench, exact_compare, fmt_count, register

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


def _nms(ctx, lib):
    return partial(lib.nms, ctx.inputs["boxes"], ctx.inputs["scores"], IOU)


def _idxs(ctx):
    v = ctx.inputs["idxs"]
    return v.astype(np.int64) if isinstance(v, np.ndarray) else v.long()


def _batched(ctx, lib):
    return partial(lib.batched_nms, ctx.inputs["boxes"], ctx.inputs["scores"], _idxs(ctx), IOU)


def _tv_nms(ctx):
    import torchvision.ops

    return partial(torchvision.ops.nms, ctx.inputs["boxes"], ctx.inputs["scores"], IOU)


def _tv_batched(ctx):
    import torchvision.ops

    return partial(
        torchvision.ops.batched_nms, ctx.inputs["boxes"], ctx.inputs["scores"], _idxs(ctx), IOU
    )


def _nms_bench(name, make, description, order):
    register(
        OpBench(
            name=name,
            family="nms",
            size_unit="boxes",
            cases=[Case(fmt_count(n), n, dict(n=n)) for n in NMS_SIZES],
            make_inputs=make,
            reference=lambda ctx: _nms(ctx, ctx.lib),
            frcnn=lambda ctx: _nms(ctx, ctx.lib),
            torchvision=_tv_nms,
            torchvision_name="torchvision.ops.nms",
            compare=exact_compare,
            description=description,
            order=order,
            reference_max_size=REFERENCE_MAX,
            trusted=_tv_nms,
        )
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

register(
    OpBench(
        name="batched_nms",
        family="nms",
        size_unit="boxes",
        cases=[
            Case(f"{fmt_count(n)} / 80 cls", n, dict(n=n), "80 classes") for n in (20_000, 100_000)
        ]
        + [Case("8 img x 2,000", 16_000, dict(images=8, per=2_000), "8 images")],
        make_inputs=lambda case, rng: (
            _per_image(case, rng)
            if "images" in case.params
            else _with_groups(_clustered, 80)(case, rng)
        ),
        reference=lambda ctx: _batched(ctx, ctx.lib),
        frcnn=lambda ctx: _batched(ctx, ctx.lib),
        torchvision=_tv_batched,
        torchvision_name="torchvision.ops.batched_nms",
        compare=exact_compare,
        description=f"NMS per class (80 classes) or per image (idxs = image), IoU {IOU}",
        order=42,
        reference_max_size=20_000,
        trusted=_tv_batched,
    )
)
