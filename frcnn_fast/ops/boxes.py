"""Box geometry ops. Boxes are ``(x1, y1, x2, y2)``, width ``x2 - x1`` (no +1)."""

import torch
from torch import Tensor

from .._checks import check_number, check_pair, check_tensor

BOX_FORMATS = ("xyxy", "yxyx", "xywh", "cxcywh")


def box_area(boxes: Tensor) -> Tensor:
    """Area of ``boxes[..., 4]``; inverted boxes have area 0."""
    check_tensor(boxes, "boxes")
    return torch.ops.frcnn_fast.box_area.default(boxes)


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise IoU ``[N, 4] x [M, 4] -> [N, M]``, 0 where the union is empty (never NaN).

    Drop-in for ``torchvision.ops.box_iou``.
    """
    check_tensor(boxes1, "boxes1")
    check_tensor(boxes2, "boxes2")
    return torch.ops.frcnn_fast.box_iou.default(boxes1, boxes2)


def box_iou_aligned(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Elementwise IoU of ``boxes1[..., 4]`` and ``boxes2[..., 4]`` (same shape) -> ``[...]``."""
    check_tensor(boxes1, "boxes1")
    check_tensor(boxes2, "boxes2")
    return torch.ops.frcnn_fast.box_iou_aligned.default(boxes1, boxes2)


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert ``boxes[..., 4]`` between ``xyxy``, ``yxyx``, ``xywh`` and ``cxcywh``."""
    check_tensor(boxes, "boxes")
    for name, fmt in (("in_fmt", in_fmt), ("out_fmt", out_fmt)):
        if not isinstance(fmt, str):
            raise TypeError(f"{name} must be a str, one of {BOX_FORMATS}, got {type(fmt).__name__}")
    return torch.ops.frcnn_fast.box_convert.default(boxes, in_fmt, out_fmt)


def clip_boxes(boxes: Tensor, size) -> Tensor:
    """Clamp x to ``[0, width]`` and y to ``[0, height]``; ``size`` is ``(height, width)``."""
    check_tensor(boxes, "boxes")
    if not isinstance(size, (tuple, list, torch.Size)):
        raise TypeError(f"size must be a (height, width) pair, got {type(size).__name__}")
    height, width = check_pair(size, "size")
    return torch.ops.frcnn_fast.clip_boxes.default(boxes, float(height), float(width))


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """int64 indices, ascending, of the boxes with width >= min_size and height >= min_size."""
    check_tensor(boxes, "boxes")
    check_number(min_size, "min_size")
    return torch.ops.frcnn_fast.remove_small_boxes.default(boxes, float(min_size))
