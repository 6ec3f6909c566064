"""Non-maximum suppression with torchvision's signatures, plus fixed-size (padded) forms.

Greedy and exact: box j is dropped iff a kept, higher-ranked box has IoU > iou_threshold with
it; ranking is a stable descending sort of the scores (ties in input order, NaN last); a box
with a non-finite coordinate is kept in its rank position and suppresses nothing.

``nms`` and ``batched_nms`` take what torchvision 0.28's take (quantized boxes and scores, a
0-d tensor threshold, mixed float dtypes, ``batched_nms`` of no boxes with the other arguments
None) and compile with ``torch.jit.script``.
"""

from typing import Optional, Tuple

import torch
from torch import Tensor

from .._checks import check_int, check_number, check_same_device, check_tensor


def _check_common(boxes, scores, iou_threshold):
    check_tensor(boxes, "boxes")
    check_tensor(scores, "scores")
    check_same_device(boxes, "boxes", scores, "scores")
    if isinstance(iou_threshold, Tensor):
        if iou_threshold.numel() != 1:
            raise ValueError(
                f"iou_threshold must be a number or a one-element tensor, got shape "
                f"{list(iou_threshold.shape)}"
            )
        return float(iou_threshold)
    check_number(iou_threshold, "iou_threshold")
    return float(iou_threshold)


def _optional_number(value, name):
    if value is not None:
        check_number(value, name)
        return float(value)
    return None


def _same_float_dtype(boxes: Tensor, scores: Tensor) -> Tuple[Tensor, Tensor]:
    """Quantized inputs dequantized (the kept set of an exact NMS does not change under the
    affine map of one quantization); mixed float dtypes promoted to their common dtype."""
    if boxes.is_quantized:
        boxes = boxes.dequantize()
    if scores.is_quantized:
        scores = scores.dequantize()
    if boxes.dtype != scores.dtype and boxes.is_floating_point() and scores.is_floating_point():
        common = torch.promote_types(boxes.dtype, scores.dtype)
        boxes = boxes.to(common)
        scores = scores.to(common)
    return boxes, scores


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """int64 indices of the boxes greedy NMS keeps, in decreasing score.

    Drop-in for ``torchvision.ops.nms`` (same result where scores are distinct).
    """
    if not torch.jit.is_scripting():
        iou_threshold = _check_common(boxes, scores, iou_threshold)
        boxes, scores = _same_float_dtype(boxes, scores)
    return torch.ops.frcnn_fast.nms(boxes, scores, float(iou_threshold))


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS independently within each value of ``idxs`` (class, image, ...); int64 indices in
    decreasing score over all groups. Drop-in for ``torchvision.ops.batched_nms``."""
    if not torch.jit.is_scripting():
        check_tensor(boxes, "boxes")
        if boxes.numel() == 0:  # torchvision answers before looking at the other arguments
            return torch.empty((0,), dtype=torch.int64, device=boxes.device)
        iou_threshold = _check_common(boxes, scores, iou_threshold)
        check_tensor(idxs, "idxs")
        check_same_device(boxes, "boxes", idxs, "idxs")
        boxes, scores = _same_float_dtype(boxes, scores)
    return torch.ops.frcnn_fast.batched_nms(boxes, scores, idxs, float(iou_threshold))


def nms_padded(
    boxes: Tensor,
    scores: Tensor,
    iou_threshold: float,
    max_output: int,
    score_threshold: Optional[float] = None,
) -> Tuple[Tensor, Tensor]:
    """Fixed-size NMS without a device-to-host sync: ``(indices[max_output], count)``.

    Only boxes with ``score > score_threshold`` take part (all when None). ``indices`` holds the
    first ``count = min(kept, max_output)`` kept indices in decreasing score, then -1; ``count``
    is a 0-d int64 tensor on the boxes' device.
    """
    if not torch.jit.is_scripting():
        iou_threshold = _check_common(boxes, scores, iou_threshold)
        check_int(max_output, "max_output")
        score_threshold = _optional_number(score_threshold, "score_threshold")
    return torch.ops.frcnn_fast.nms_padded(
        boxes, scores, float(iou_threshold), max_output, score_threshold
    )


def batched_nms_padded(
    boxes: Tensor,
    scores: Tensor,
    idxs: Tensor,
    iou_threshold: float,
    max_output: int,
    score_threshold: Optional[float] = None,
) -> Tuple[Tensor, Tensor]:
    """Fixed-size ``batched_nms``: its first ``max_output`` indices (over all groups together)
    among the boxes with ``score > score_threshold``, padded with -1, and their count."""
    if not torch.jit.is_scripting():
        iou_threshold = _check_common(boxes, scores, iou_threshold)
        check_tensor(idxs, "idxs")
        check_int(max_output, "max_output")
        score_threshold = _optional_number(score_threshold, "score_threshold")
    return torch.ops.frcnn_fast.batched_nms_padded(
        boxes, scores, idxs, float(iou_threshold), max_output, score_threshold
    )
