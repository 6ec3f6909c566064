"""Anchor (or proposal) to ground-truth matching without the G x A IoU matrix.

``match_boxes`` returns what ``torchvision.models.detection._utils.Matcher(high, low,
allow_low_quality_matches)`` returns on ``box_iou(gt_boxes, anchors)``, plus each anchor's max
IoU, from a fused kernel whose memory grows with A + G: each anchor's best ground truth (first
index on ties), -1 where its max IoU < ``low_threshold``, -2 where ``low <= max IoU < high``;
with ``allow_low_quality_matches`` every anchor whose IoU with some ground truth equals that
ground truth's best IoU (ties included) keeps its best ground truth.

Differences from the matrix rule, on purpose: a ground truth whose best IoU is 0 rescues
nothing (torchvision would turn every anchor of IoU 0 into a match), and no ground truths is
valid (every anchor -1, max IoU 0) where torchvision raises. IoU is 0 where the union is empty
(torchvision: NaN).
"""

from typing import List, Optional, Tuple, Union

import torch
from torch import Tensor

from .._checks import check_number, check_tensor

BELOW_LOW_THRESHOLD = -1
BETWEEN_THRESHOLDS = -2


def _check_common(anchors, high_threshold, low_threshold, allow_low_quality_matches):
    check_tensor(anchors, "anchors")
    check_number(high_threshold, "high_threshold")
    check_number(low_threshold, "low_threshold")
    if not isinstance(allow_low_quality_matches, bool):
        raise TypeError(
            "allow_low_quality_matches must be a bool, got "
            f"{type(allow_low_quality_matches).__name__}"
        )


def match_boxes(
    gt_boxes: Tensor,
    anchors: Tensor,
    high_threshold: float,
    low_threshold: float,
    allow_low_quality_matches: bool = False,
    *,
    validate: bool = True,
) -> Tuple[Tensor, Tensor]:
    """Match ``anchors[A, 4]`` to ``gt_boxes[G, 4]`` (xyxy): ``(matches int64[A], max_iou[A])``.

    ``matches[a]`` is the index of anchor a's best ground truth, ``-1`` (below low) or ``-2``
    (between the thresholds), as torchvision's ``Matcher``; ``max_iou`` (dtype of the boxes) is
    anchor a's best IoU, 0 when there is no ground truth. Thresholds must satisfy
    ``0 <= low_threshold <= high_threshold <= 1`` and are compared, as torch would, after rounding
    to the boxes' dtype. ``validate=False`` skips the value checks (finite ground-truth
    coordinates), which on CUDA cost one device-to-host sync.
    """
    check_tensor(gt_boxes, "gt_boxes")
    _check_common(anchors, high_threshold, low_threshold, allow_low_quality_matches)
    return torch.ops.frcnn_fast.match_boxes.default(
        gt_boxes,
        anchors,
        float(high_threshold),
        float(low_threshold),
        allow_low_quality_matches,
        bool(validate),
    )


def _pad(gt_boxes: List[Tensor], anchors: Tensor) -> Tuple[Tensor, Tensor]:
    """Per-image ground truths as one ``[B, Gmax, 4]`` tensor (zero rows as padding) and their
    counts; the counts are known on the host, so this costs no device sync."""
    for i, g in enumerate(gt_boxes):
        check_tensor(g, f"gt_boxes[{i}]")
        if g.dim() != 2 or g.shape[-1] != 4:
            raise ValueError(f"gt_boxes[{i}] must have shape [G, 4], got {list(g.shape)}")
        if g.dtype != anchors.dtype or g.device != anchors.device:
            raise ValueError(
                f"gt_boxes[{i}] and anchors must have the same dtype and device, got "
                f"{g.dtype} on {g.device} and {anchors.dtype} on {anchors.device}"
            )
    counts = torch.tensor([g.shape[0] for g in gt_boxes], dtype=torch.int64)
    g_max = max((g.shape[0] for g in gt_boxes), default=0)
    padded = anchors.new_zeros((len(gt_boxes), g_max, 4))
    for i, g in enumerate(gt_boxes):
        padded[i, : g.shape[0]] = g
    return padded, counts.to(anchors.device, non_blocking=True)


def match_boxes_batched(
    gt_boxes: Union[List[Tensor], Tensor],
    anchors: Tensor,
    high_threshold: float,
    low_threshold: float,
    allow_low_quality_matches: bool = False,
    *,
    gt_counts: Optional[Tensor] = None,
    validate: bool = True,
) -> Tuple[Tensor, Tensor]:
    """``match_boxes`` for B images sharing ``anchors[A, 4]``, in one kernel launch per pass:
    ``(matches int64[B, A], max_iou[B, A])``; row b equals ``match_boxes(gt_b, anchors, ...)``.

    ``gt_boxes`` is a list of ``Tensor[G_b, 4]``, or a padded ``Tensor[B, Gmax, 4]`` whose first
    ``gt_counts[b]`` rows (int64 ``Tensor[B]``; all rows when None) are image b's ground truths;
    the padding rows are ignored, whatever they hold. ``validate=False`` skips the value checks
    (finite coordinates, ``0 <= gt_counts <= Gmax``; on CUDA one device-to-host sync); counts
    out of range are then clamped.
    """
    _check_common(anchors, high_threshold, low_threshold, allow_low_quality_matches)
    if isinstance(gt_boxes, (list, tuple)):
        if gt_counts is not None:
            raise ValueError("gt_counts must be None when gt_boxes is a list")
        gt_boxes, gt_counts = _pad(list(gt_boxes), anchors)
    else:
        check_tensor(gt_boxes, "gt_boxes")
        if gt_counts is not None:
            check_tensor(gt_counts, "gt_counts")
    return torch.ops.frcnn_fast.match_boxes_batched.default(
        gt_boxes,
        gt_counts,
        anchors,
        float(high_threshold),
        float(low_threshold),
        allow_low_quality_matches,
        bool(validate),
    )
