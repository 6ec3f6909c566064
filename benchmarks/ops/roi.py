"""RoI pooling, RoIAlign and the multi-level (FPN) pooler, forward and forward+backward,
against ``torchvision.ops.roi_pool`` / ``roi_align`` / ``MultiScaleRoIAlign``.

Single-level cases: the VGG16 conv5 map of an 800x800 image (2 x 512 x 50 x 50, stride 16),
7x7 output, R RoIs split over the 2 images, NCHW and channels-last (NHWC) inputs. RoIAlign
uses ``sampling_ratio=2`` as torchvision's detection models do. FPN case: 256 channels, levels
P2-P5 of 800x800 images, 1,000 RoIs per image, 2 images. Forward+backward cases time
``autograd.grad`` of the pooled map against a fixed random gradient and return the input
gradient (checked against the reference's backward).

Work (see ``benchmarks/roofline.py``): a forward reads the feature map(s) and the RoIs once and
writes the pooled output once; a forward + backward also reads the output gradient and writes
the input gradient once (the argmax or the saved forward output are the implementation's
business, not compulsory). Flops per output element: RoIAlign, 4 samples (2 x 2) of 4
neighbours each, a multiply-add per neighbour, and the division by the sample count: 33 (the
backward spreads the gradient over the same 16 neighbours: 33 again); the sample positions and
weights, shared by all channels, are left out (< 1%). RoI pooling, one comparison per input
cell of each bin (from the RoIs, with the kernels' rounding), and the backward one addition per
output element.
"""

from functools import partial

import numpy as np
import torch

from ..data import random_boxes
from ..registry import Case, OpBench, fmt_count, register
from ..roofline import Work

IMAGE = 800.0
STRIDE = 16
POOLED = (7, 7)
SAMPLING = 2
FPN_LEVELS = ("p2", "p3", "p4", "p5")
# RoIAlign: 2 x 2 samples x 4 neighbours x a multiply-add, + the division by the count.
ALIGN_FLOPS = 4 * 4 * 2 + 1


def _case(r, layout, **params):
    return Case(
        f"{fmt_count(r)} {layout.upper()}", r, dict(r=r, layout=layout, **params), layout.upper()
    )


SINGLE = [_case(r, layout) for layout in ("nchw", "nhwc") for r in (128, 300, 2000)]
FPN = [_case(2000, layout) for layout in ("nchw", "nhwc")]


def _rois(rng, r, images=2):
    boxes = random_boxes(rng, r, extent=(0.0, IMAGE), min_side=16.0, max_side=600.0)
    return np.concatenate([(np.arange(r) % images)[:, None].astype(np.float64), boxes], axis=1)


def single_inputs(case, rng):
    n, c, h, w = 2, 512, int(IMAGE) // STRIDE, int(IMAGE) // STRIDE
    return {
        "input": rng.normal(size=(n, c, h, w)),
        "rois": _rois(rng, case.params["r"]),
        "grad": rng.normal(size=(case.params["r"], c, *POOLED)),
    }


def fpn_inputs(case, rng):
    maps = {
        f"x_{name}": rng.normal(size=(2, 256, int(IMAGE) >> (l + 2), int(IMAGE) >> (l + 2)))
        for l, name in enumerate(FPN_LEVELS)
    }
    rois = _rois(rng, case.params["r"])
    return {**maps, "rois": rois, "grad": rng.normal(size=(case.params["r"], 256, *POOLED))}


def _layout(ctx, t):
    return t.contiguous(memory_format=torch.channels_last) if ctx.params["layout"] == "nhwc" else t


def _torch_thunk(ctx, pool, names, backward):
    """``pool(maps...)`` (forward) or the gradient of ``<pool(maps), grad>`` w.r.t. the maps."""
    maps = [_layout(ctx, ctx.inputs[k]) for k in names]
    if not backward:
        return lambda: pool(*maps)
    maps = [m.detach().clone().requires_grad_() for m in maps]
    grad = ctx.inputs["grad"]

    def run():
        out = pool(*maps)
        grads = torch.autograd.grad(out, maps, grad)
        return grads[0] if len(grads) == 1 else torch.cat([g.flatten() for g in grads])

    return run


def pooled_cells(rois, scale, height, width, pooled=POOLED):
    """Input cells covered by the RoIs' max-pooling bins, summed over RoIs and bins (the
    comparisons per channel): RoI corners rounded to cells, bins cut by floor / ceil and
    clipped to the map, as the kernels do."""
    f32 = np.float32  # the kernels' geometry for float32 maps: 7 * (16 / 7) must stay 16
    corners = np.floor(rois[:, 1:].astype(f32) * f32(scale) + f32(0.5))
    total = np.ones(len(rois))
    for lo, hi, bins, limit in ((0, 2, pooled[1], width), (1, 3, pooled[0], height)):
        size = np.maximum(corners[:, hi] - corners[:, lo] + 1, 1)
        i = np.arange(bins, dtype=f32)[None, :]
        step = (size / f32(bins))[:, None]
        begin = np.clip(np.floor(i * step) + corners[:, lo, None], 0, limit)
        end = np.clip(np.ceil((i + 1) * step) + corners[:, lo, None], 0, limit)
        total *= np.maximum(end - begin, 0).sum(axis=1)
    return float(total.sum())


def _roi_work(op, backward):
    def work(case, inputs, expected):
        maps = [v for k, v in inputs.items() if k == "input" or k.startswith("x_")]
        map_values = sum(m.size for m in maps)
        out_values = inputs["grad"].size  # = the pooled output's
        channels = maps[0].shape[1]
        if op == "roi_pool":
            x = inputs["input"]
            cells = pooled_cells(inputs["rois"], 1.0 / STRIDE, *x.shape[2:])
            flops, backward_flops = channels * cells, out_values
        else:
            flops, backward_flops = ALIGN_FLOPS * out_values, ALIGN_FLOPS * out_values
        forward = Work(values=map_values + inputs["rois"].size + out_values, flops=flops)
        if not backward:
            return forward
        return forward + Work(values=out_values + map_values, flops=backward_flops)

    return work


# --- single-level ----------------------------------------------------------------------------
def _pool_fn(lib, op, rois):
    if op == "roi_pool":
        return lambda x: lib.roi_pool(x, rois, POOLED, 1.0 / STRIDE)
    return lambda x: lib.roi_align(x, rois, POOLED, 1.0 / STRIDE, SAMPLING, False)


def _reference(op, backward):
    def factory(ctx):
        R, x, rois, g = ctx.lib, ctx.inputs["input"], ctx.inputs["rois"], ctx.inputs["grad"]
        geometry = np.float64 if ctx.dtype == torch.float64 else np.float32
        if op == "roi_pool":
            if not backward:
                return partial(R.roi_pool, x, rois, POOLED, 1.0 / STRIDE, geometry)
            return lambda: R.roi_pool_backward(
                g, rois, R.roi_pool_with_argmax(x, rois, POOLED, 1.0 / STRIDE, geometry)[1], x.shape
            )
        if not backward:
            return partial(R.roi_align, x, rois, POOLED, 1.0 / STRIDE, SAMPLING, False, geometry)
        return partial(
            R.roi_align_backward, g, rois, x.shape, 1.0 / STRIDE, SAMPLING, False, geometry
        )

    return factory


def _frcnn(op, backward):
    return lambda ctx: _torch_thunk(
        ctx, _pool_fn(ctx.lib, op, ctx.inputs["rois"]), ["input"], backward
    )


def _torchvision(op, backward):
    def factory(ctx):
        import torchvision.ops

        return _torch_thunk(
            ctx, _pool_fn(torchvision.ops, op, ctx.inputs["rois"]), ["input"], backward
        )

    return factory


for _order, (_op, _bwd) in enumerate(
    [("roi_pool", False), ("roi_pool", True), ("roi_align", False), ("roi_align", True)]
):
    _name = _op + ("_fwd_bwd" if _bwd else "")
    register(
        OpBench(
            name=_name,
            family=_op,
            size_unit="RoIs",
            cases=SINGLE,
            make_inputs=single_inputs,
            reference=_reference(_op, _bwd),
            frcnn=_frcnn(_op, _bwd),
            torchvision=_torchvision(_op, _bwd),
            torchvision_name=f"torchvision.ops.{_op}" + (" (+ backward)" if _bwd else ""),
            atol_scale=4.0 if not _bwd else 16.0,
            work=_roi_work(_op, _bwd),
            description=f"{_op} 2x512x50x50 -> [R,512,7,7]"
            + (", forward + backward" if _bwd else ", forward"),
            order=60 + _order,
        )
    )


# --- FPN -------------------------------------------------------------------------------------
def _fpn_scales():
    return [1.0 / (1 << (l + 2)) for l in range(len(FPN_LEVELS))]


def _fpn_reference(backward):
    def factory(ctx):
        R = ctx.lib
        maps = [ctx.inputs[f"x_{n}"] for n in FPN_LEVELS]
        rois, g = ctx.inputs["rois"], ctx.inputs["grad"]
        levels = R.fpn_levels(rois[:, 1:], 2, 5)
        geometry = np.float64 if ctx.dtype == torch.float64 else np.float32
        if not backward:
            return partial(
                R.multilevel_roi_align,
                maps,
                rois,
                levels,
                POOLED,
                _fpn_scales(),
                SAMPLING,
                False,
                geometry,
            )

        def run():
            grads = R.multilevel_roi_align_backward(
                g, rois, levels, [m.shape for m in maps], _fpn_scales(), SAMPLING, False, geometry
            )
            return np.concatenate([gr.reshape(-1) for gr in grads])

        return run

    return factory


def _fpn_torch(module_cls, backward):
    def factory(ctx):
        rois = ctx.inputs["rois"]
        boxes = [rois[rois[:, 0] == i, 1:] for i in range(2)]
        # rows come back image-major: the gradient/comparison order must match the reference's
        order = torch.cat([torch.nonzero(rois[:, 0] == i).flatten() for i in range(2)])
        pooler = module_cls(list(FPN_LEVELS), POOLED, SAMPLING)
        inv = torch.empty_like(order)
        inv[order] = torch.arange(len(order))
        ctx.inputs = dict(ctx.inputs, grad=ctx.inputs["grad"][order])

        def pool(*maps):
            out = pooler(dict(zip(FPN_LEVELS, maps)), boxes, [(int(IMAGE), int(IMAGE))] * 2)
            return out if backward else out[inv]

        return _torch_thunk(ctx, pool, [f"x_{n}" for n in FPN_LEVELS], backward)

    return factory


def _frcnn_fpn(backward):
    return lambda ctx: _fpn_torch(ctx.lib.MultiScaleRoIAlign, backward)(ctx)


def _tv_fpn(backward):
    def factory(ctx):
        import torchvision.ops

        return _fpn_torch(torchvision.ops.MultiScaleRoIAlign, backward)(ctx)

    return factory


for _order, _bwd in enumerate([False, True]):
    register(
        OpBench(
            name="multiscale_roi_align" + ("_fwd_bwd" if _bwd else ""),
            family="roi_align",
            size_unit="RoIs",
            cases=FPN,
            make_inputs=fpn_inputs,
            reference=_fpn_reference(_bwd),
            frcnn=_frcnn_fpn(_bwd),
            torchvision=_tv_fpn(_bwd),
            torchvision_name="torchvision.ops.MultiScaleRoIAlign"
            + (" (+ backward)" if _bwd else ""),
            atol_scale=4.0 if not _bwd else 16.0,
            work=_roi_work("roi_align", _bwd),
            description="FPN P2-P5 (256 ch), 2 images x 1,000 RoIs -> [2000,256,7,7]"
            + (", forward + backward" if _bwd else ", forward"),
            order=70 + _order,
        )
    )
