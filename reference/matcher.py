"""Matching anchors (or proposals) to ground truths: torchvision's ``Matcher`` rule on the IoU,
computed the way the fused kernel does it (two passes, never the G x A matrix).

Semantics (README "Conventions", ``frcnn_fast.match_boxes``):

* ``matches[a]`` = the index of anchor a's best ground truth (the first one on ties);
  ``-1`` where its max IoU ``< low_threshold``, ``-2`` where ``low <= max IoU < high``.
* ``allow_low_quality_matches``: an anchor whose IoU with some ground truth g equals g's best
  IoU (exactly, ties included) keeps its own best ground truth (not necessarily g), whatever
  the thresholds say. A ground truth whose best IoU is 0 rescues nothing (the matrix rule of
  torchvision and mmdetection would rescue every anchor of IoU 0).
* No ground truth: every anchor ``-1``, max IoU 0.

Bit-compatibility with the kernels: the IoU is computed in ``compute_dtype`` (float32 for
float16/bfloat16/float32 boxes, float64 for float64) with the kernels' formula and order of
operations (``iou_one_to_many``), then rounded to the boxes' dtype as ``box_iou`` rounds its
output; the thresholds are rounded to that dtype too, as torch rounds a Python number compared
with a tensor. Then every comparison, the ``==`` of the low-quality test included, is exact and
agrees with the kernels and with torchvision's ``Matcher`` on ``box_iou``'s matrix.
"""

import numpy as np

from .nms import iou_one_to_many

DTYPES = ("float32", "float64", "float16", "bfloat16")


def _round_bfloat16(x):
    """float32 values rounded to the nearest bfloat16 (ties to even), as c10::BFloat16 does,
    returned as float32."""
    x = np.asarray(x, dtype=np.float32)
    bits = x.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    out = rounded.astype(np.uint32).view(np.float32)
    return np.where(np.isnan(x), x, out)


def _rounder(dtype):
    """(compute dtype, function rounding compute-dtype values to ``dtype`` and back)."""
    if dtype == "float64":
        return np.float64, lambda v: np.asarray(v, dtype=np.float64)
    if dtype == "float32":
        return np.float32, lambda v: np.asarray(v, dtype=np.float32)
    if dtype == "float16":
        return (
            np.float32,
            lambda v: np.asarray(v, dtype=np.float32).astype(np.float16).astype(np.float32),
        )
    return np.float32, _round_bfloat16


def _dtype_of(boxes, dtype):
    if dtype is not None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        return dtype
    # bfloat16 boxes reach NumPy as float32 (or float64): name it with dtype="bfloat16".
    return {np.float16: "float16", np.float32: "float32"}.get(boxes.dtype.type, "float64")


def _check_thresholds(high_threshold, low_threshold):
    high, low = float(high_threshold), float(low_threshold)
    for name, t in (("high_threshold", high), ("low_threshold", low)):
        if not 0.0 <= t <= 1.0:  # also refuses NaN
            raise ValueError(f"{name} must be in [0, 1], got {t}")
    if low > high:
        raise ValueError(f"low_threshold must be <= high_threshold, got {low} and {high}")
    return high, low


def _as_boxes(boxes, name):
    boxes = np.asarray(boxes)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must have shape [N, 4], got {boxes.shape}")
    return boxes


def gt_best_iou(gt_boxes, anchors, rounding):
    """Pass 1: each ground truth's best IoU over all anchors (0 when there are no anchors)."""
    best = np.zeros(len(gt_boxes), dtype=anchors.dtype)
    for g, box in enumerate(gt_boxes):
        iou = rounding(iou_one_to_many(box, anchors))
        if iou.size:
            best[g] = max(iou.max(), 0.0)
    return best


def match_boxes(
    gt_boxes,
    anchors,
    high_threshold,
    low_threshold,
    allow_low_quality_matches=False,
    *,
    dtype=None,
):
    """``(matches int64[A], max_iou float64[A])`` of ``anchors[A, 4]`` against ``gt_boxes[G, 4]``.

    ``dtype`` is the dtype the kernels would see (``"float32"``, ``"float64"``, ``"float16"``,
    ``"bfloat16"``; default: from the arrays, float64 unless they are float16/float32).
    """
    high, low = _check_thresholds(high_threshold, low_threshold)
    gt_in = _as_boxes(gt_boxes, "gt_boxes")
    anchors_in = _as_boxes(anchors, "anchors")
    if not np.isfinite(np.asarray(gt_in, dtype=np.float64)).all():
        raise ValueError("gt_boxes must have finite coordinates")
    dtype = _dtype_of(anchors_in, dtype)
    compute, rounding = _rounder(dtype)
    gt = gt_in.astype(compute)
    anc = anchors_in.astype(compute)
    a = anc.shape[0]
    if len(gt) == 0:
        return np.full(a, -1, dtype=np.int64), np.zeros(a, dtype=np.float64)

    # Pass 1.
    gt_best = gt_best_iou(gt, anc, rounding)

    # Pass 2: the IoUs again, ground truth by ground truth, in index order.
    best = np.full(a, -1.0, dtype=compute)
    best_index = np.zeros(a, dtype=np.int64)
    rescued = np.zeros(a, dtype=bool)
    for g, box in enumerate(gt):
        iou = rounding(iou_one_to_many(box, anc))
        better = iou > best  # strict: the first best ground truth wins a tie, as torch.max
        best = np.where(better, iou, best)
        best_index = np.where(better, g, best_index)
        if gt_best[g] > 0:
            rescued |= iou == gt_best[g]

    low_t, high_t = rounding(np.asarray([low, high], dtype=compute))
    matches = np.where(best < low_t, -1, np.where(best < high_t, -2, best_index))
    if allow_low_quality_matches:
        matches = np.where(rescued, best_index, matches)
    return matches.astype(np.int64), best.astype(np.float64)
