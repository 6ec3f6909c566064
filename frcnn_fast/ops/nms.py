"""Non-maximum suppression with torchvision's signatures, plus fixed-size (padded) forms.

Greedy and exact: box j is dropped iff a kept, higher-ranked box has IoU > iou_threshold with
it; ranking is a stable descending sort of the scores (ties in input order, NaN last); a box
with a non-finite coordinate is kept in its rank position and suppresses nothing.
"""

from typing import Optional, Tuple

import torch
from torch import Tensor

from .._checks import check_int, check_number, check_tensor


def _check_common(boxes, scores, iou_threshold):
    check_tensor(boxes, "boxes")
    check_tensor(scores, "scores")
    check_number(iou_threshold, "iou_threshold")


def _optional_number(value, name):
    if value is not None:
        check_number(value, name)
        return float(value)
    return None


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """int64 indices of the boxes greedy NMS keeps, in decreasing score.

    Drop-in for ``torchvision.ops.nms`` (same result where scores are distinct).
    """
    _check_common(boxes, scores, iou_threshold)
    return torch.ops.frcnn_fast.nms.default(boxes, scores, float(iou_threshold))


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS independently within each value of ``idxs`` (class, image, ...); int64 indices in
    decreasing score over all groups. Drop-in for ``torchvision.ops.batched_nms``."""
    _check_common(boxes, scores, iou_threshold)
    check_tensor(idxs, "idxs")
    return torch.ops.frcnn_fast.batched_nms.default(boxes, scores, idxs, float(iou_threshold))


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
    _check_common(boxes, scores, iou_threshold)
    check_int(max_output, "max_output")
    score_threshold = _optional_number(score_threshold, "score_threshold")
    return torch.ops.frcnn_fast.nms_padded.default(
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
    _check_common(boxes, scores, iou_threshold)
    check_tensor(idxs, "idxs")
    check_int(max_output, "max_output")
    score_threshold = _optional_number(score_threshold, "score_threshold")
    return torch.ops.frcnn_fast.batched_nms_padded.default(
        boxes, scores, idxs, float(iou_threshold), max_output, score_threshold
    )
