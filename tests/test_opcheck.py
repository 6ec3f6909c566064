"""torch.library.opcheck on every custom op of the frcnn_fast namespace: schema, fake (meta)
kernel, autograd registration and AOT dispatch with dynamic shapes."""
import math

import numpy as np
import pytest
import torch

import frcnn_fast  # noqa: F401  (loads _C and registers torch.ops.frcnn_fast.*)
from helpers import REAL_DEVICES, random_boxes

OPS = (
    "box_area",
    "box_iou",
    "box_iou_aligned",
    "box_convert",
    "clip_boxes",
    "remove_small_boxes",
    "encode_boxes",
    "decode_boxes",
    "grid_anchors",
    "nms",
    "batched_nms",
    "nms_padded",
    "batched_nms_padded",
)


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
        return [(b(7),), (b(5, f64, layout="slice"),), (b(0),), (b(6, f16),), (b(4, bf16).reshape(2, 2, 4),)]
    if name == "box_iou":
        return [(b(7), b(5, seed=1)), (b(3, f64, layout="slice"), b(4, f64, seed=2)), (b(0), b(3)), (b(4, bf16), b(2, bf16, seed=3))]
    if name == "box_iou_aligned":
        return [(b(7), b(7, seed=1)), (b(4, f64, layout="slice"), b(4, f64, seed=2)), (b(0), b(0)), (b(5, f16), b(5, f16, seed=3))]
    if name == "box_convert":
        return [(b(6), "xyxy", "cxcywh"), (b(5, f64, layout="slice"), "xywh", "yxyx"), (b(0), "cxcywh", "xyxy"), (b(3, bf16), "yxyx", "xywh")]
    if name == "clip_boxes":
        return [(b(6), 100.0, 150.0), (b(5, f64, layout="slice"), 80.5, 60.0), (b(0), 10.0, 10.0), (b(4, f16), 50.0, 70.0)]
    if name == "remove_small_boxes":
        return [(b(9), 20.0), (b(6, f64, layout="slice"), 0.0), (b(0), 1.0), (b(5, bf16), 1e9), (b(7, f16), 30.0)]
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
        d = lambda n, k, dt=f32: torch.linspace(-2, 2, n * 4 * k).reshape(n, 4 * k).to(dtype=dt, device=device)  # noqa: E731
        return [
            (d(6, 1), b(6, positive=True), [1.0, 1.0, 1.0, 1.0], clamp),
            (d(5, 3, f64)[:, :8], b(5, f64, positive=True, layout="slice"), [10.0, 10.0, 5.0, 5.0], clamp),
            (d(0, 2), b(0), [1.0, 1.0, 1.0, 1.0], clamp),
            (d(4, 2, bf16), b(4, bf16, positive=True), [10.0, 10.0, 5.0, 5.0], 2.0),
        ]
    if name == "grid_anchors":
        base = lambda dt: frcnn_fast.base_anchors((32, 64), (0.5, 1.0, 2.0), dtype=dt, device=device)  # noqa: E731
        return [
            (base(f32), 3, 5, 8.0, 12.0, 0.5),
            (base(f64), 4, 2, 16.0, 16.0, 0.0),
            (base(f32), 0, 5, 16.0, 16.0, 0.5),
            (base(f16), 2, 3, 4.0, 4.0, 0.5),
        ]
    if name in ("nms", "batched_nms", "nms_padded", "batched_nms_padded"):
        rng = np.random.default_rng(4)
        s = lambda n, dt=f32: torch.as_tensor(rng.integers(0, 5, n) / 4.0).to(dtype=dt, device=device)  # noqa: E731
        g = lambda n: torch.as_tensor(rng.integers(0, 3, n)).to(device)  # noqa: E731
        plain = [(b(40), s(40), 0.5), (b(30, f64, layout="slice"), s(30, f64), 0.3), (b(0), s(0), 0.7), (b(20, f16), s(20, f16), 0.5), (b(20, bf16), s(20, bf16), 1.0)]
        if name == "nms":
            return plain
        if name == "batched_nms":
            return [(bx, sc, g(len(bx)), t) for bx, sc, t in plain]
        if name == "nms_padded":
            return [(bx, sc, t, 8) for bx, sc, t in plain] + [(b(25), s(25), 0.5, 50, 0.3)]
        return [(bx, sc, g(len(bx)), t, 8) for bx, sc, t in plain] + [(b(25), s(25), g(25), 0.5, 50, 0.3)]
    raise AssertionError(name)


@pytest.mark.parametrize("device", REAL_DEVICES)
@pytest.mark.parametrize("name", OPS)
def test_opcheck(name, device):
    op = getattr(torch.ops.frcnn_fast, name).default
    for args in samples(name, device):
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
    }
    assert set(expected) == set(OPS)
    for name, schema in expected.items():
        got = str(getattr(torch.ops.frcnn_fast, name).default._schema)
        assert got == "frcnn_fast::" + schema, got
