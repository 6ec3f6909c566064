"""Training targets of the two stages of Faster R-CNN, one image at a time.

* ``anchor_targets``: RPN labels (1 object, 0 background, -1 ignored), the matched ground truth
  of each positive and its regression target (weights 1, 1, 1, 1).
* ``proposal_targets``: ground truths appended to the proposals, foreground / background by IoU,
  a balanced sample, class labels (0 = background) and regression targets (weights 10, 10, 5, 5).
* ``balanced_sample``: at most ``batch_size_per_image`` labels kept per image, at most
  ``positive_fraction`` of them positive, the rest negatives, drawn without replacement.

The draws use a ``np.random.Generator`` and need not be the same numbers as the torch version's:
what must agree is the labels before sampling, and the properties of the sample.
"""

import numpy as np

from .anchors import anchors_inside
from .boxes import encode_boxes
from .matcher import match_boxes


def _check_fraction(value, name):
    v = float(value)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return v


def balanced_sample(labels, batch_size_per_image, positive_fraction, rng):
    """One image's ``labels`` (1 / 0 / -1) with everything not drawn set to -1."""
    labels = np.asarray(labels, dtype=np.int64)
    pos = np.nonzero(labels == 1)[0]
    neg = np.nonzero(labels == 0)[0]
    num_pos = min(len(pos), int(batch_size_per_image * positive_fraction))
    num_neg = min(len(neg), batch_size_per_image - num_pos)
    out = np.full_like(labels, -1)
    out[rng.choice(pos, num_pos, replace=False)] = 1
    out[rng.choice(neg, num_neg, replace=False)] = 0
    return out


def anchor_targets_one(anchors, gt_boxes, image_size, high, low, allowed_border=0.0):
    """Labels before sampling, matched ground truth and regression targets for one image."""
    anchors = np.asarray(anchors, dtype=np.float64).reshape(-1, 4)
    gt = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    a = len(anchors)
    labels = np.full(a, -1, dtype=np.int64)
    matched = np.full(a, -1, dtype=np.int64)
    targets = np.zeros((a, 4))
    inside = np.nonzero(anchors_inside(anchors, image_size, allowed_border))[0]
    # Matching sees only the eligible anchors: a ground truth's best anchor is its best inside one.
    m, _ = match_boxes(gt, anchors[inside], high, low, allow_low_quality_matches=True)
    labels[inside[m >= 0]] = 1
    labels[inside[m == -1]] = 0
    matched[inside[m >= 0]] = m[m >= 0]
    pos = np.nonzero(matched >= 0)[0]
    targets[pos] = encode_boxes(anchors[pos], gt[matched[pos]])
    return labels, matched, targets


def anchor_targets(
    anchors,
    gt_boxes,
    image_sizes,
    high=0.7,
    low=0.3,
    batch_size_per_image=256,
    positive_fraction=0.5,
    allowed_border=0.0,
    sample=True,
    rng=None,
):
    """``(labels[B, A], matched_gt[B, A], bbox_targets[B, A, 4])``; see ``anchor_targets_one``."""
    high, low = _check_fraction(high, "high"), _check_fraction(low, "low")
    if low > high:
        raise ValueError(f"low ({low}) must be <= high ({high})")
    if len(gt_boxes) != len(image_sizes):
        raise ValueError("gt_boxes and image_sizes must have one entry per image")
    rng = np.random.default_rng() if rng is None else rng
    out = [
        anchor_targets_one(anchors, g, s, high, low, allowed_border)
        for g, s in zip(gt_boxes, image_sizes)
    ]
    a = np.asarray(anchors).reshape(-1, 4).shape[0]
    labels = np.stack([o[0] for o in out]) if out else np.zeros((0, a), dtype=np.int64)
    matched = np.stack([o[1] for o in out]) if out else np.zeros((0, a), dtype=np.int64)
    targets = np.stack([o[2] for o in out]) if out else np.zeros((0, a, 4))
    if sample:
        labels = np.stack(
            [balanced_sample(row, batch_size_per_image, positive_fraction, rng) for row in labels]
        ).reshape(labels.shape)
    return labels, matched, targets


def proposal_labels_one(proposals, gt_boxes, gt_labels, fg_iou, bg_iou_high, bg_iou_low):
    """Ground truths appended to one image's proposals, then per proposal: class label (> 0
    foreground, 0 background, -1 ignored) and matched ground truth (-1 unless foreground)."""
    gt = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    boxes = np.concatenate([np.asarray(proposals, dtype=np.float64).reshape(-1, 4), gt])
    gt_labels = np.asarray(gt_labels, dtype=np.int64).reshape(-1)
    m, max_iou = match_boxes(gt, boxes, fg_iou, bg_iou_high, allow_low_quality_matches=False)
    labels = np.full(len(boxes), -1, dtype=np.int64)
    fg = m >= 0
    labels[fg] = gt_labels[m[fg]]
    # An image without ground truths is all background (there is nothing to be near).
    bg = (m == -1) & ((max_iou >= bg_iou_low) | (len(gt) == 0))
    labels[bg] = 0
    return boxes, labels, np.where(fg, m, -1)


def proposal_targets(
    proposals,
    gt_boxes,
    gt_labels,
    fg_iou=0.5,
    bg_iou_high=0.5,
    bg_iou_low=0.0,
    batch_size_per_image=512,
    positive_fraction=0.25,
    weights=(10.0, 10.0, 5.0, 5.0),
    sample=True,
    rng=None,
):
    """Per image: (sampled boxes, labels, regression targets, matched gt), sampled indices in
    ascending order; targets are 0 for background."""
    rng = np.random.default_rng() if rng is None else rng
    out = []
    for props, gt, lab in zip(proposals, gt_boxes, gt_labels):
        boxes, labels, matched = proposal_labels_one(
            props, gt, lab, fg_iou, bg_iou_high, bg_iou_low
        )
        if sample:
            kind = np.where(labels > 0, 1, labels)
            kind = balanced_sample(kind, batch_size_per_image, positive_fraction, rng)
            keep = np.nonzero(kind >= 0)[0]
        else:
            keep = np.nonzero(labels >= 0)[0]
        boxes, labels, matched = boxes[keep], labels[keep], matched[keep]
        targets = np.zeros((len(keep), 4))
        fg = matched >= 0
        gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
        targets[fg] = encode_boxes(boxes[fg], gt[matched[fg]], weights)
        out.append((boxes, labels, targets, matched))
    return out
