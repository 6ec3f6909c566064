"""Non-maximum suppression: the greedy definition, one box at a time, in rank order.

Semantics (docs/CONVENTIONS.md, "NMS"):

* Rank = a stable descending sort of the scores: equal scores keep their input order, NaN
  scores come last (after -inf), in input order.
* Walking the ranks in order, a box is kept unless a kept, higher-ranked box has
  ``IoU > iou_threshold`` (strict) with it.
* A box with a non-finite coordinate (NaN or +-inf) is inert: it neither suppresses nor is
  suppressed, so it is kept in its rank position.
* The result is int64 indices into the input, in rank order.

Bit-compatibility with the kernels. The kernels compute IoU in ``compute_dtype`` (float32 for
float32/float16/bfloat16 inputs, float64 for float64 inputs) with the formula of
``csrc/common/box_math.h`` (``iou_from_areas``), in the same order of operations and without
FMA contraction. NumPy's float32 arithmetic rounds every step the same IEEE way, so computing
the IoU below in ``compute_dtype`` reproduces the kernels' IoU bit for bit. The comparison
``IoU > iou_threshold`` is then made exactly, in float64, against the threshold as given (the
kernels turn the threshold into the largest ``compute_dtype`` value <= it, which gives the same
answer for every ``compute_dtype`` IoU). So ties at the threshold resolve identically.
"""

import numpy as np


def _compute_dtype(boxes, compute_dtype):
    if compute_dtype is not None:
        return np.dtype(compute_dtype)
    # float16/float32 inputs: the kernels compute in float32 (bfloat16 reaches NumPy as
    # float32 or float64 and must be named explicitly: compute_dtype=np.float32).
    return np.dtype(np.float32) if boxes.dtype in (np.float16, np.float32) else np.dtype(np.float64)


def _as_inputs(boxes, scores, compute_dtype):
    boxes = np.asarray(boxes)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape [N, 4], got {boxes.shape}")
    dt = _compute_dtype(boxes, compute_dtype)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (boxes.shape[0],):
        raise ValueError(
            f"scores must have shape [N] with N = len(boxes) = {boxes.shape[0]}, got {scores.shape}"
        )
    return boxes.astype(dt), scores


def _check_iou_threshold(iou_threshold):
    t = float(iou_threshold)
    if not 0.0 <= t <= 1.0:  # also refuses NaN
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    return t


def rank(scores):
    """Indices that sort ``scores`` in decreasing order; ties in input order, NaN last."""
    scores = np.asarray(scores, dtype=np.float64)
    # Negating maps NaN to NaN, which a NumPy sort puts last; "stable" keeps ties in input order.
    # -(-0.0) == 0.0 == -0.0 compare equal, so signed zeros tie as well.
    return np.argsort(-scores, kind="stable").astype(np.int64)


def iou_one_to_many(box, others):
    """IoU of ``box[4]`` with ``others[M, 4]``, in their dtype, in the kernels' order of
    operations (box_math.h: box_intersection, box_area, iou_from_areas)."""
    zero = box.dtype.type(0)
    one = box.dtype.type(1)
    w = np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0])
    h = np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1])
    inter = np.maximum(w, zero) * np.maximum(h, zero)
    area_a = np.maximum(box[2] - box[0], zero) * np.maximum(box[3] - box[1], zero)
    area_b = np.maximum(others[:, 2] - others[:, 0], zero) * np.maximum(
        others[:, 3] - others[:, 1], zero
    )
    with np.errstate(over="ignore", invalid="ignore"):
        union = (area_a + area_b) - inter
        ratio = inter / np.where(union > zero, union, one)
    return np.where(union > zero, ratio, zero)


def _greedy(boxes, order, iou_threshold):
    """Kept flags, indexed by rank, of greedy NMS over ``boxes[order]``."""
    ranked = boxes[order]
    n = len(order)
    inert = ~np.isfinite(ranked).all(axis=1)
    suppressed = np.zeros(n, dtype=bool)
    kept = np.zeros(n, dtype=bool)
    for r in range(n):
        if suppressed[r]:
            continue
        kept[r] = True
        if inert[r]:
            continue
        later = np.arange(r + 1, n)
        later = later[~suppressed[later] & ~inert[later]]
        iou = iou_one_to_many(ranked[r], ranked[later]).astype(np.float64)
        suppressed[later[iou > iou_threshold]] = True
    return kept


def _candidates(scores, score_threshold):
    """Ranks of the boxes that take part: all, or those with ``score > score_threshold``."""
    order = rank(scores)
    if score_threshold is None:
        return order
    if np.isnan(score_threshold):
        raise ValueError("score_threshold must not be NaN")
    # NaN > t is False: boxes without a score never pass a threshold.
    return order[scores[order] > score_threshold]


def nms(boxes, scores, iou_threshold, compute_dtype=None):
    """Indices (int64, decreasing score) of the boxes greedy NMS keeps."""
    boxes, scores = _as_inputs(boxes, scores, compute_dtype)
    t = _check_iou_threshold(iou_threshold)
    order = rank(scores)
    return order[_greedy(boxes, order, t)]


def _as_idxs(idxs, n):
    idxs = np.asarray(idxs)
    if idxs.shape != (n,) or not np.issubdtype(idxs.dtype, np.integer):
        raise ValueError(
            f"idxs must be integers of shape [N] with N = {n}, got {idxs.dtype} {idxs.shape}"
        )
    return idxs.astype(np.int64)


def _batched_keep(boxes, scores, idxs, t, order):
    """Kept flags over ``order`` (a rank order) with NMS run separately per ``idxs`` value."""
    kept = np.zeros(len(order), dtype=bool)
    group_of = idxs[order]
    for g in np.unique(group_of):
        members = np.nonzero(group_of == g)[0]  # positions in `order`, still in rank order
        kept[members] = _greedy(boxes, order[members], t)
    return kept


def batched_nms(boxes, scores, idxs, iou_threshold, compute_dtype=None):
    """NMS independently within each ``idxs`` value; indices in decreasing score over all groups
    (ties in input order)."""
    boxes, scores = _as_inputs(boxes, scores, compute_dtype)
    idxs = _as_idxs(idxs, len(boxes))
    t = _check_iou_threshold(iou_threshold)
    order = rank(scores)
    return order[_batched_keep(boxes, scores, idxs, t, order)]


def _padded(kept_indices, max_output):
    max_output = int(max_output)
    if max_output < 0:
        raise ValueError(f"max_output must be >= 0, got {max_output}")
    count = min(len(kept_indices), max_output)
    out = np.full(max_output, -1, dtype=np.int64)
    out[:count] = kept_indices[:count]
    return out, count


def nms_padded(boxes, scores, iou_threshold, max_output, score_threshold=None, compute_dtype=None):
    """Fixed-size NMS: ``(indices[max_output] int64, count)``.

    Only boxes with ``score > score_threshold`` take part (all when it is None); the first
    ``count = min(kept, max_output)`` entries are the kept indices in decreasing score, the rest
    are -1.
    """
    boxes, scores = _as_inputs(boxes, scores, compute_dtype)
    t = _check_iou_threshold(iou_threshold)
    order = _candidates(scores, score_threshold)
    return _padded(order[_greedy(boxes, order, t)], max_output)


def batched_nms_padded(
    boxes, scores, idxs, iou_threshold, max_output, score_threshold=None, compute_dtype=None
):
    """Fixed-size batched NMS: the first ``max_output`` of ``batched_nms`` over the boxes with
    ``score > score_threshold``, padded with -1, and their count."""
    boxes, scores = _as_inputs(boxes, scores, compute_dtype)
    idxs = _as_idxs(idxs, len(boxes))
    t = _check_iou_threshold(iou_threshold)
    order = _candidates(scores, score_threshold)
    return _padded(order[_batched_keep(boxes, scores, idxs, t, order)], max_output)
