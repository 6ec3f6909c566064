"""Box geometry: area, IoU, format conversion, clipping, and the Faster R-CNN box coding.

Boxes are ``(x1, y1, x2, y2)`` in continuous pixel coordinates; width is ``x2 - x1`` (no +1).
Mirrors ``csrc/common/box_math.h``.
"""

import math

import numpy as np

BOX_FORMATS = ("xyxy", "yxyx", "xywh", "cxcywh")

# The clamp on dw, dh before exp(): an object can grow at most 1000/16 times from its anchor.
DEFAULT_DECODE_CLAMP = math.log(1000.0 / 16)


def _as_boxes(boxes, name, ndim=None):
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim < 1 or boxes.shape[-1] != 4:
        raise ValueError(f"{name} must have shape [..., 4], got {boxes.shape}")
    if ndim is not None and boxes.ndim != ndim:
        raise ValueError(f"{name} must have shape [N, 4], got {boxes.shape}")
    return boxes


def _widths_heights(boxes):
    # An inverted box has width or height 0, never a negative one.
    w = np.maximum(boxes[..., 2] - boxes[..., 0], 0.0)
    h = np.maximum(boxes[..., 3] - boxes[..., 1], 0.0)
    return w, h


def box_area(boxes):
    w, h = _widths_heights(_as_boxes(boxes, "boxes"))
    return w * h


def _iou(a, b):
    """IoU of broadcastable box arrays ``a[..., 4]`` and ``b[..., 4]``."""
    iw = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0.0)
    ih = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0.0)
    inter = iw * ih
    union = box_area(a) + box_area(b) - inter
    # Two empty boxes have union 0: their IoU is 0, not NaN.
    safe_union = np.where(union > 0, union, 1.0)
    return np.where(union > 0, inter / safe_union, 0.0)


def box_iou(boxes1, boxes2):
    """Pairwise IoU: ``[N, 4] x [M, 4] -> [N, M]``."""
    a = _as_boxes(boxes1, "boxes1", ndim=2)
    b = _as_boxes(boxes2, "boxes2", ndim=2)
    return _iou(a[:, None, :], b[None, :, :])


def box_iou_aligned(boxes1, boxes2):
    """Elementwise IoU of ``boxes1[i]`` with ``boxes2[i]``: ``[..., 4] x [..., 4] -> [...]``."""
    a = _as_boxes(boxes1, "boxes1")
    b = _as_boxes(boxes2, "boxes2")
    if a.shape != b.shape:
        raise ValueError(f"boxes1 and boxes2 must have the same shape, got {a.shape} and {b.shape}")
    return _iou(a, b)


def _to_xyxy(boxes, fmt):
    c0, c1, c2, c3 = (boxes[..., k] for k in range(4))
    if fmt == "xyxy":
        return c0, c1, c2, c3
    if fmt == "yxyx":
        return c1, c0, c3, c2
    if fmt == "xywh":
        return c0, c1, c0 + c2, c1 + c3
    # cxcywh
    return c0 - 0.5 * c2, c1 - 0.5 * c3, c0 + 0.5 * c2, c1 + 0.5 * c3


def _from_xyxy(x1, y1, x2, y2, fmt):
    if fmt == "xyxy":
        return x1, y1, x2, y2
    if fmt == "yxyx":
        return y1, x1, y2, x2
    if fmt == "xywh":
        return x1, y1, x2 - x1, y2 - y1
    # cxcywh
    return 0.5 * (x1 + x2), 0.5 * (y1 + y2), x2 - x1, y2 - y1


def box_convert(boxes, in_fmt, out_fmt):
    """Convert between ``xyxy``, ``yxyx`` (the tutorials' order), ``xywh`` and ``cxcywh``."""
    for name, fmt in (("in_fmt", in_fmt), ("out_fmt", out_fmt)):
        if fmt not in BOX_FORMATS:
            raise ValueError(f"{name} must be one of {BOX_FORMATS}, got {fmt!r}")
    boxes = _as_boxes(boxes, "boxes")
    if in_fmt == out_fmt:
        return boxes.copy()
    return np.stack(_from_xyxy(*_to_xyxy(boxes, in_fmt), out_fmt), axis=-1)


def clip_boxes(boxes, size):
    """Clamp x to ``[0, width]`` and y to ``[0, height]``; ``size`` is ``(height, width)``."""
    height, width = size
    boxes = _as_boxes(boxes, "boxes")
    out = boxes.copy()
    out[..., 0::2] = np.clip(boxes[..., 0::2], 0.0, width)
    out[..., 1::2] = np.clip(boxes[..., 1::2], 0.0, height)
    return out


def remove_small_boxes(boxes, min_size):
    """Indices (int64, ascending) of the boxes with width >= min_size and height >= min_size."""
    boxes = _as_boxes(boxes, "boxes", ndim=2)
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return np.nonzero((w >= min_size) & (h >= min_size))[0].astype(np.int64)


def _check_weights(weights):
    weights = tuple(float(w) for w in weights)
    if len(weights) != 4:
        raise ValueError(f"weights must have 4 entries (wx, wy, ww, wh), got {len(weights)}")
    return weights


def _centres_sizes(boxes):
    w = boxes[..., 2] - boxes[..., 0]
    h = boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + 0.5 * w, boxes[..., 1] + 0.5 * h, w, h


def encode_boxes(reference_boxes, target_boxes, weights=(1.0, 1.0, 1.0, 1.0)):
    """Deltas that move ``reference_boxes`` (anchors, proposals) onto ``target_boxes``."""
    wx, wy, ww, wh = _check_weights(weights)
    ref = _as_boxes(reference_boxes, "reference_boxes")
    tgt = _as_boxes(target_boxes, "target_boxes")
    if ref.shape != tgt.shape:
        raise ValueError(
            f"reference_boxes and target_boxes must have the same shape, got {ref.shape} and {tgt.shape}"
        )
    rcx, rcy, rw, rh = _centres_sizes(ref)
    tcx, tcy, tw, th = _centres_sizes(tgt)
    with np.errstate(divide="ignore", invalid="ignore"):
        dx = wx * (tcx - rcx) / rw
        dy = wy * (tcy - rcy) / rh
        dw = ww * np.log(tw / rw)
        dh = wh * np.log(th / rh)
    return np.stack([dx, dy, dw, dh], axis=-1)


def decode_boxes(deltas, reference_boxes, weights=(1.0, 1.0, 1.0, 1.0), clamp=DEFAULT_DECODE_CLAMP):
    """Apply ``deltas[N, 4*K]`` (K boxes per reference, e.g. one per class) to ``reference_boxes[N, 4]``."""
    wx, wy, ww, wh = _check_weights(weights)
    ref = _as_boxes(reference_boxes, "reference_boxes", ndim=2)
    deltas = np.asarray(deltas, dtype=np.float64)
    if deltas.ndim != 2 or deltas.shape[1] % 4 != 0 or deltas.shape[0] != ref.shape[0]:
        raise ValueError(
            f"deltas must have shape [N, 4*K] with N = len(reference_boxes) = {ref.shape[0]}, got {deltas.shape}"
        )
    n, k = deltas.shape[0], deltas.shape[1] // 4
    d = deltas.reshape(n, k, 4)
    rcx, rcy, rw, rh = (v[:, None] for v in _centres_sizes(ref))
    dx = d[..., 0] / wx
    dy = d[..., 1] / wy
    dw = np.minimum(d[..., 2] / ww, clamp)
    dh = np.minimum(d[..., 3] / wh, clamp)
    cx = dx * rw + rcx
    cy = dy * rh + rcy
    w = np.exp(dw) * rw
    h = np.exp(dh) * rh
    out = np.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=-1)
    return out.reshape(n, 4 * k)
