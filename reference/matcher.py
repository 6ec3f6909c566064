# TEMPORARY stand-in: replaced by the fused kernel at merge
"""Matching of anchors / proposals to ground truths (stand-in on the IoU matrix)."""

import numpy as np

from .boxes import box_iou


def match_boxes(gt_boxes, anchors, high_threshold, low_threshold, allow_low_quality_matches=False):
    gt = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    anchors = np.asarray(anchors, dtype=np.float64).reshape(-1, 4)
    if not 0.0 <= low_threshold <= high_threshold <= 1.0:
        raise ValueError("need 0 <= low_threshold <= high_threshold <= 1")
    a = len(anchors)
    if len(gt) == 0:
        return np.full(a, -1, dtype=np.int64), np.zeros(a)
    iou = box_iou(gt, anchors)
    if a == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    best = iou.argmax(axis=0).astype(np.int64)
    max_iou = iou.max(axis=0)
    matches = best.copy()
    matches[max_iou < low_threshold] = -1
    matches[(max_iou >= low_threshold) & (max_iou < high_threshold)] = -2
    if allow_low_quality_matches:
        best_per_gt = iou.max(axis=1)[:, None]
        rescue = ((iou == best_per_gt) & (best_per_gt > 0)).any(axis=0)
        matches[rescue] = best[rescue]
    return matches, max_iou
