# TEMPORARY stand-in: replaced by the fused kernel at merge
"""Anchor / proposal matching (stand-in built on the IoU matrix; same semantics as the fused op)."""

import torch

from .._checks import check_number, check_tensor
from .boxes import box_iou


def _check_thresholds(high, low):
    check_number(high, "high_threshold")
    check_number(low, "low_threshold")
    if not 0.0 <= float(low) <= 1.0:
        raise ValueError(f"low_threshold must be in [0, 1], got {low}")
    if not 0.0 <= float(high) <= 1.0:
        raise ValueError(f"high_threshold must be in [0, 1], got {high}")
    if float(low) > float(high):
        raise ValueError(f"low_threshold ({low}) must be <= high_threshold ({high})")


def match_boxes(gt_boxes, anchors, high_threshold, low_threshold, allow_low_quality_matches=False):
    check_tensor(gt_boxes, "gt_boxes")
    check_tensor(anchors, "anchors")
    _check_thresholds(high_threshold, low_threshold)
    if gt_boxes.dim() != 2 or gt_boxes.shape[-1] != 4:
        raise ValueError(f"gt_boxes must have shape [G, 4], got {tuple(gt_boxes.shape)}")
    if anchors.dim() != 2 or anchors.shape[-1] != 4:
        raise ValueError(f"anchors must have shape [A, 4], got {tuple(anchors.shape)}")
    a = anchors.shape[0]
    if gt_boxes.shape[0] == 0:
        return (
            torch.full((a,), -1, dtype=torch.int64, device=anchors.device),
            torch.zeros((a,), dtype=anchors.dtype, device=anchors.device),
        )
    iou = box_iou(gt_boxes.to(anchors.dtype), anchors)
    if a == 0:
        return torch.zeros((0,), dtype=torch.int64, device=anchors.device), iou.new_zeros((0,))
    max_iou, best = iou.max(dim=0)
    matches = best.clone()
    matches[max_iou < low_threshold] = -1
    matches[(max_iou >= low_threshold) & (max_iou < high_threshold)] = -2
    if allow_low_quality_matches:
        best_per_gt = iou.max(dim=1).values[:, None]
        rescue = ((iou == best_per_gt) & (best_per_gt > 0)).any(dim=0)
        matches = torch.where(rescue, best, matches)
    return matches, max_iou


def match_boxes_batched(
    gt_boxes, anchors, high_threshold, low_threshold, allow_low_quality_matches=False
):
    outs = [
        match_boxes(g, anchors, high_threshold, low_threshold, allow_low_quality_matches)
        for g in gt_boxes
    ]
    if not outs:
        a = anchors.shape[0]
        return (
            torch.zeros((0, a), dtype=torch.int64, device=anchors.device),
            torch.zeros((0, a), dtype=anchors.dtype, device=anchors.device),
        )
    return torch.stack([m for m, _ in outs]), torch.stack([v for _, v in outs])
