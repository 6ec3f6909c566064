"""torch.library.opcheck on every custom op of the frcnn_fast namespace: schema, fake (meta)
kernel, autograd registration and AOT dispatch with dynamic shapes."""

import math

import numpy as np
import pytest
import torch
from helpers import CPU_ONLY_OPS, REAL_DEVICES, random_boxes, registered_ops

import frcnn_fast  # noqa: F401  (loads _C and registers torch.ops.frcnn_fast.*)

OPS = registered_ops()


def _boxes(n, dtype, device, seed, positive=False, layout=None):
    rng = np.random.default_rng(seed)
    b = random_boxes(rng, n, lim=200.0, degenerate_frac=0.0 if positive else 0.2)
    if positive:
        b[:, 2:] = b[:, :2] + np.maximum(b[:, 2:] - b[:, :2], 1.0)
    t = torch.as_tensor(b).to(dtype=dtype, device=device)
    if layout == "slice":
        big = torch.zeros(n, 6, dtype=dtype, device=device)
        big[:, 1:5] = t
        t = big[:, 1:5]
    return t


def samples(name, device):
    """(args, kwargs) samples: several dtypes, an empty input and a non-contiguous one."""
    f32, f64, f16, bf16 = torch.float32, torch.float64, torch.float16, torch.bfloat16
    b = lambda n, dt=f32, seed=0, **kw: _boxes(n, dt, device, seed, **kw)  # noqa: E731
    if name == "box_area":
        return [
            (b(7),),
            (b(5, f64, layout="slice"),),
            (b(0),),
            (b(6, f16),),
            (b(4, bf16).reshape(2, 2, 4),),
        ]
    if name == "box_iou":
        return [
            (b(7), b(5, seed=1)),
            (b(3, f64, layout="slice"), b(4, f64, seed=2)),
            (b(0), b(3)),
            (b(4, bf16), b(2, bf16, seed=3)),
        ]
    if name == "box_iou_aligned":
        return [
            (b(7), b(7, seed=1)),
            (b(4, f64, layout="slice"), b(4, f64, seed=2)),
            (b(0), b(0)),
            (b(5, f16), b(5, f16, seed=3)),
        ]
    if name == "box_convert":
        return [
            (b(6), "xyxy", "cxcywh"),
            (b(5, f64, layout="slice"), "xywh", "yxyx"),
            (b(0), "cxcywh", "xyxy"),
            (b(3, bf16), "yxyx", "xywh"),
        ]
    if name == "clip_boxes":
        return [
            (b(6), 100.0, 150.0),
            (b(5, f64, layout="slice"), 80.5, 60.0),
            (b(0), 10.0, 10.0),
            (b(4, f16), 50.0, 70.0),
        ]
    if name == "remove_small_boxes":
        return [
            (b(9), 20.0),
            (b(6, f64, layout="slice"), 0.0),
            (b(0), 1.0),
            (b(5, bf16), 1e9),
            (b(7, f16), 30.0),
        ]
    if name == "encode_boxes":
        w1, w2 = [1.0, 1.0, 1.0, 1.0], [10.0, 10.0, 5.0, 5.0]
        return [
            (b(6, positive=True), b(6, seed=1, positive=True), w1),
            (b(5, f64, positive=True, layout="slice"), b(5, f64, seed=2, positive=True), w2),
            (b(0), b(0), w2),
            (b(4, f16, positive=True), b(4, f16, seed=3, positive=True), w1),
        ]
    if name == "decode_boxes":
        clamp = math.log(1000.0 / 16)
        d = lambda n, k, dt=f32: (
            torch.linspace(-2, 2, n * 4 * k).reshape(n, 4 * k).to(dtype=dt, device=device)
        )  # noqa: E731
        return [
            (d(6, 1), b(6, positive=True), [1.0, 1.0, 1.0, 1.0], clamp),
            (
                d(5, 3, f64)[:, :8],
                b(5, f64, positive=True, layout="slice"),
                [10.0, 10.0, 5.0, 5.0],
                clamp,
            ),
            (d(0, 2), b(0), [1.0, 1.0, 1.0, 1.0], clamp),
            (d(4, 2, bf16), b(4, bf16, positive=True), [10.0, 10.0, 5.0, 5.0], 2.0),
        ]
    if name == "grid_anchors":
        base = lambda dt: frcnn_fast.base_anchors(
            (32, 64), (0.5, 1.0, 2.0), dtype=dt, device=device
        )  # noqa: E731
        return [
            (base(f32), 3, 5, 8.0, 12.0, 0.5),
            (base(f64), 4, 2, 16.0, 16.0, 0.0),
            (base(f32), 0, 5, 16.0, 16.0, 0.5),
            (base(f16), 2, 3, 4.0, 4.0, 0.5),
        ]
    if name in ("nms", "batched_nms", "nms_padded", "batched_nms_padded"):
        rng = np.random.default_rng(4)
        s = lambda n, dt=f32: torch.as_tensor(rng.integers(0, 5, n) / 4.0).to(
            dtype=dt, device=device
        )  # noqa: E731
        g = lambda n: torch.as_tensor(rng.integers(0, 3, n)).to(device)  # noqa: E731
        plain = [
            (b(40), s(40), 0.5),
            (b(30, f64, layout="slice"), s(30, f64), 0.3),
            (b(0), s(0), 0.7),
            (b(20, f16), s(20, f16), 0.5),
            (b(20, bf16), s(20, bf16), 1.0),
        ]
        if name == "nms":
            return plain
        if name == "batched_nms":
            return [(bx, sc, g(len(bx)), t) for bx, sc, t in plain]
        if name == "nms_padded":
            return [(bx, sc, t, 8) for bx, sc, t in plain] + [(b(25), s(25), 0.5, 50, 0.3)]
        return [(bx, sc, g(len(bx)), t, 8) for bx, sc, t in plain] + [
            (b(25), s(25), g(25), 0.5, 50, 0.3)
        ]
    if name == "match_boxes":
        gt = b(6, positive=True)
        return [
            (gt, b(40, positive=True), 0.7, 0.3, True, True),
            (gt.double(), b(40, f64, seed=1), 0.5, 0.5, False, True),
            (b(0), b(10), 0.7, 0.3, True, True),
            (gt.half(), b(30, f16, seed=2, layout="slice"), 0.7, 0.3, True, False),
            (gt.bfloat16(), b(30, bf16, seed=3), 0.6, 0.2, True, True),
        ]
    if name == "match_boxes_batched":
        gt = b(12, positive=True).reshape(3, 4, 4)
        counts = torch.tensor([4, 0, 2], device=device)
        return [
            (gt, counts, b(40, positive=True), 0.7, 0.3, True, True),
            (gt.double(), None, b(40, f64, seed=1), 0.5, 0.4, False, True),
            (gt[:, :0], torch.zeros(3, dtype=torch.int64, device=device), b(8), 0.7, 0.3),
        ]
    if name.lstrip("_").startswith(("roi_", "multilevel")):
        return _roi_samples(name, device)
    raise AssertionError(name)


def _rois(k, n, dtype, device, seed):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-4, 40, size=(k, 2))
    r = np.concatenate([rng.integers(0, n, (k, 1)), xy, xy + rng.uniform(0, 30, (k, 2))], 1)
    return torch.as_tensor(r).to(dtype=dtype, device=device)


def _roi_samples(name, device):
    """Forward samples (contiguous, channels-last, strided, half, empty); backward samples are
    built from real forward outputs so that argmax holds valid cells."""
    f32, f64, bf16 = torch.float32, torch.float64, torch.bfloat16

    def fmap(n, c, h, w, dtype=f32, layout=None, seed=0):
        t = torch.as_tensor(np.random.default_rng(seed).normal(size=(n, c, h, w))).to(
            dtype=dtype, device=device
        )
        if layout == "cl":
            t = t.contiguous(memory_format=torch.channels_last)
        elif layout == "strided":
            t = t[:, :, :, ::2]
        return t

    fwd = [
        (fmap(2, 3, 9, 11), _rois(6, 2, f32, device, 0), 0.5, 2, 3),
        (fmap(2, 5, 8, 8, f64, "cl"), _rois(4, 2, f64, device, 1), 0.25, 3, 3),
        (fmap(1, 2, 7, 12, f32, "strided"), _rois(3, 1, f32, device, 2), 1.0, 2, 2),
        (fmap(2, 3, 6, 6, bf16), _rois(4, 2, bf16, device, 3), 0.5, 2, 2),
        (fmap(2, 3, 6, 6), _rois(0, 2, f32, device, 4), 0.5, 2, 2),
    ]
    levels = lambda k, seed: torch.as_tensor(
        np.random.default_rng(seed).integers(0, 2, k), device=device
    )  # noqa: E731
    if name == "roi_pool":
        return [(*a, i % 2 == 0) for i, a in enumerate(fwd)]
    if name == "roi_pool_inference":
        return fwd
    if name == "roi_align":
        return [
            (*a, sr, al, False)
            for a, sr, al in zip(fwd, (-1, 2, 0, 1, -1), (False, True, True, False, False))
        ]
    if name == "multilevel_roi_align":
        return [
            ([x, x[:, :, ::2, ::2]], r, levels(len(r), i), [s, s / 2], ph, pw, 2, bool(i % 2), True)
            for i, (x, r, s, ph, pw) in enumerate(fwd)
        ]
    out = []
    for x, r, s, ph, pw in fwd:
        n, c, h, w = x.shape
        cl = (not x.is_contiguous()) and x.is_contiguous(memory_format=torch.channels_last)
        g = torch.randn(r.shape[0], c, ph, pw, device=device).to(x.dtype)
        if name == "_roi_pool_backward":
            _, argmax = torch.ops.frcnn_fast.roi_pool(x, r, s, ph, pw, False)
            out.append((g, r, argmax, n, c, h, w, cl, True))
        elif name == "_roi_pool_backward_recompute":
            out.append((g, x, r, s))
        elif name == "_roi_align_backward":
            out.append((g, r, s, ph, pw, n, c, h, w, -1, False, cl, False))
        else:
            lv = levels(r.shape[0], 7)
            out.append(
                (
                    g,
                    r,
                    lv,
                    [s, s / 2],
                    ph,
                    pw,
                    n,
                    c,
                    [h, (h + 1) // 2],
                    [w, (w + 1) // 2],
                    2,
                    True,
                    cl,
                    True,
                )
            )
    return out


@pytest.mark.parametrize("device", REAL_DEVICES)
@pytest.mark.parametrize("name", OPS)
def test_opcheck(name, device):
    op = getattr(torch.ops.frcnn_fast, name).default
    if name in CPU_ONLY_OPS and device != "cpu":
        pytest.skip(f"{name} has a CPU kernel only: {CPU_ONLY_OPS[name]}")
    # roi_pool_inference has a gradient on CPU only (recomputed argmax)
    differentiable = ("roi_pool", "roi_align", "multilevel_roi_align") + (
        ("roi_pool_inference",) if device == "cpu" else ()
    )
    for args in samples(name, device):
        if name in differentiable:
            # exercise the registered autograd formula: gradients w.r.t. the feature maps
            maps = args[0] if isinstance(args[0], list) else [args[0]]
            for m in maps:
                m.requires_grad_(m.is_floating_point())
        # remove_small_boxes has a data-dependent output size: its fake kernel allocates it with
        # ctx.new_dynamic_size(); opcheck's default utilities handle that, so nothing is excluded.
        torch.library.opcheck(op, args)


def test_all_ops_registered():
    """Every op of the API's schema list exists in the namespace and has the documented schema."""
    expected = {
        "box_area": "box_area(Tensor boxes) -> Tensor",
        "box_iou": "box_iou(Tensor boxes1, Tensor boxes2) -> Tensor",
        "box_iou_aligned": "box_iou_aligned(Tensor boxes1, Tensor boxes2) -> Tensor",
        "box_convert": "box_convert(Tensor boxes, str in_fmt, str out_fmt) -> Tensor",
        "clip_boxes": "clip_boxes(Tensor boxes, float height, float width) -> Tensor",
        "remove_small_boxes": "remove_small_boxes(Tensor boxes, float min_size) -> Tensor",
        "encode_boxes": "encode_boxes(Tensor reference_boxes, Tensor target_boxes, float[] weights) -> Tensor",
        "decode_boxes": "decode_boxes(Tensor deltas, Tensor reference_boxes, float[] weights, float clamp) -> Tensor",
        "grid_anchors": "grid_anchors(Tensor base_anchors, int height, int width, float stride_y, float stride_x, float offset) -> Tensor",
        "nms": "nms(Tensor boxes, Tensor scores, float iou_threshold) -> Tensor",
        "batched_nms": "batched_nms(Tensor boxes, Tensor scores, Tensor idxs, float iou_threshold) -> Tensor",
        "nms_padded": "nms_padded(Tensor boxes, Tensor scores, float iou_threshold, int max_output, float? score_threshold=None) -> (Tensor, Tensor)",
        "batched_nms_padded": "batched_nms_padded(Tensor boxes, Tensor scores, Tensor idxs, float iou_threshold, int max_output, float? score_threshold=None) -> (Tensor, Tensor)",
        "match_boxes": "match_boxes(Tensor gt_boxes, Tensor anchors, float high_threshold, float low_threshold, bool allow_low_quality_matches=False, bool validate=True) -> (Tensor, Tensor)",
        "match_boxes_batched": "match_boxes_batched(Tensor gt_boxes, Tensor? gt_counts, Tensor anchors, float high_threshold, float low_threshold, bool allow_low_quality_matches=False, bool validate=True) -> (Tensor, Tensor)",
        "roi_pool": "roi_pool(Tensor input, Tensor boxes, float spatial_scale, SymInt pooled_height, SymInt pooled_width, bool deterministic) -> (Tensor, Tensor)",
        "roi_pool_inference": "roi_pool_inference(Tensor input, Tensor boxes, float spatial_scale, SymInt pooled_height, SymInt pooled_width) -> Tensor",
        "_roi_pool_backward": "_roi_pool_backward(Tensor grad, Tensor boxes, Tensor argmax, SymInt batch_size, SymInt channels, SymInt height, SymInt width, bool channels_last, bool deterministic) -> Tensor",
        "_roi_pool_backward_recompute": "_roi_pool_backward_recompute(Tensor grad, Tensor input, Tensor boxes, float spatial_scale) -> Tensor",
        "roi_align": "roi_align(Tensor input, Tensor boxes, float spatial_scale, SymInt pooled_height, SymInt pooled_width, int sampling_ratio, bool aligned, bool deterministic) -> Tensor",
        "_roi_align_backward": "_roi_align_backward(Tensor grad, Tensor boxes, float spatial_scale, SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width, int sampling_ratio, bool aligned, bool channels_last, bool deterministic) -> Tensor",
        "multilevel_roi_align": "multilevel_roi_align(Tensor[] inputs, Tensor boxes, Tensor levels, float[] spatial_scales, SymInt pooled_height, SymInt pooled_width, int sampling_ratio, bool aligned, bool deterministic) -> Tensor",
        "_multilevel_roi_align_backward": "_multilevel_roi_align_backward(Tensor grad, Tensor boxes, Tensor levels, float[] spatial_scales, SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt[] heights, SymInt[] widths, int sampling_ratio, bool aligned, bool channels_last, bool deterministic) -> Tensor[]",
    }
    assert set(expected) == set(OPS)
    for name, schema in expected.items():
        got = str(getattr(torch.ops.frcnn_fast, name).default._schema)
        assert got == "frcnn_fast::" + schema, got
