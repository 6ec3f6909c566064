"""The proposal layer, one image and one level at a time.

``order="topk_first"`` (torchvision): per level the ``pre_nms_top_n`` anchors of highest
objectness, then decode, clip, drop small boxes and low scores, NMS within each level, the
``post_nms_top_n`` best. ``order="filter_first"`` (the tutorials): decode, clip and drop small
boxes first, then the per-level top-k among the survivors, NMS and the post-NMS top-k.
Objectness ranks by a stable descending sort of the logits (NaN as -inf); NMS by the sigmoid.
"""

import numpy as np

from .boxes import clip_boxes, decode_boxes
from .nms import batched_nms


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _rank(logits):
    keys = np.where(np.isnan(logits), -np.inf, logits)
    return np.argsort(-keys, kind="stable")


def _valid(boxes, scores, min_size, score_thresh):
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return (w >= min_size) & (h >= min_size) & (scores >= score_thresh)


def proposals_one(
    objectness,
    deltas,
    anchors,
    image_size,
    pre_nms_top_n,
    post_nms_top_n,
    nms_thresh,
    min_size,
    score_thresh=0.0,
    num_anchors_per_level=None,
    order="topk_first",
    compute_dtype=None,
):
    """``(boxes[K, 4], scores[K])`` of one image, in decreasing score."""
    objectness = np.asarray(objectness, dtype=np.float64).reshape(-1)
    deltas = np.asarray(deltas, dtype=np.float64).reshape(-1, 4)
    anchors = np.asarray(anchors, dtype=np.float64).reshape(-1, 4)
    per_level = [len(anchors)] if num_anchors_per_level is None else list(num_anchors_per_level)
    cand_boxes, cand_scores, cand_level = [], [], []
    start = 0
    for lvl, n in enumerate(per_level):
        logits = objectness[start : start + n]
        boxes = clip_boxes(
            decode_boxes(deltas[start : start + n], anchors[start : start + n]), image_size
        )
        scores = _sigmoid(logits)
        valid = _valid(boxes, scores, min_size, score_thresh)
        ranked = _rank(logits)
        if order == "topk_first":
            top = ranked[:pre_nms_top_n]
            top = top[valid[top]]
        else:
            top = ranked[valid[ranked]][:pre_nms_top_n]
        cand_boxes.append(boxes[top])
        cand_scores.append(scores[top])
        cand_level.append(np.full(len(top), lvl, dtype=np.int64))
        start += n
    boxes = np.concatenate(cand_boxes) if cand_boxes else np.zeros((0, 4))
    scores = np.concatenate(cand_scores) if cand_scores else np.zeros(0)
    level = np.concatenate(cand_level) if cand_level else np.zeros(0, dtype=np.int64)
    if compute_dtype is not None:
        boxes = boxes.astype(compute_dtype).astype(np.float64)
    keep = batched_nms(boxes, scores, level, nms_thresh, compute_dtype=compute_dtype)
    keep = keep[:post_nms_top_n]
    return boxes[keep], scores[keep]


def generate_proposals(
    objectness,
    deltas,
    anchors,
    image_sizes,
    pre_nms_top_n,
    post_nms_top_n,
    nms_thresh=0.7,
    min_size=1e-3,
    score_thresh=0.0,
    num_anchors_per_level=None,
    order="topk_first",
):
    """Lists of per-image boxes and scores for ``objectness[B, A]``, ``deltas[B, A, 4]``."""
    objectness = np.asarray(objectness, dtype=np.float64)
    deltas = np.asarray(deltas, dtype=np.float64)
    out = [
        proposals_one(
            objectness[b],
            deltas[b],
            anchors,
            image_sizes[b],
            pre_nms_top_n,
            post_nms_top_n,
            nms_thresh,
            min_size,
            score_thresh,
            num_anchors_per_level,
            order,
        )  # fmt: skip
        for b in range(objectness.shape[0])
    ]
    return [o[0] for o in out], [o[1] for o in out]
