"""Faster R-CNN losses in NumPy: smooth L1, the RPN loss and the box-head loss.

``normalization="torchvision"`` divides the box-loss sum by the number of sampled entries,
``"tutorial"`` by the number of positives; classification losses are means over the sampled
entries; a count of 0 divides by 1.
"""

import numpy as np


def smooth_l1(x, beta):
    """Elementwise smooth L1 of the difference ``x``; ``beta=0`` is |x|."""
    x = np.abs(np.asarray(x, dtype=np.float64))
    if beta == 0:
        return x
    return np.where(x < beta, 0.5 * x * x / beta, x - 0.5 * beta)


def smooth_l1_loss(input, target, beta=1.0 / 9, reduction="sum"):
    loss = smooth_l1(np.asarray(input, np.float64) - np.asarray(target, np.float64), beta)
    return {"none": lambda v: v, "sum": np.sum, "mean": np.mean}[reduction](loss)


def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def rpn_loss(objectness, deltas, labels, bbox_targets, beta=1.0 / 9, normalization="torchvision"):
    z = np.asarray(objectness, np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    d = np.asarray(deltas, np.float64).reshape(-1, 4)
    t = np.asarray(bbox_targets, np.float64).reshape(-1, 4)
    sampled, pos = labels >= 0, labels == 1
    # binary cross-entropy with logits: -[y log s(z) + (1 - y) log s(-z)]
    bce = -np.where(pos, _log_sigmoid(z), _log_sigmoid(-z))
    obj = bce[sampled].sum() / max(sampled.sum(), 1)
    box = smooth_l1(d[pos] - t[pos], beta).sum()
    denom = sampled.sum() if normalization == "torchvision" else pos.sum()
    return obj, box / max(denom, 1)


def box_head_loss(
    class_logits,
    box_regression,
    labels,
    regression_targets,
    beta=1.0 / 9,
    normalization="torchvision",
):
    logits = np.asarray(class_logits, np.float64)
    n, c = logits.shape
    labels = np.asarray(labels).reshape(-1)
    reg = np.asarray(box_regression, np.float64).reshape(n, c, 4)
    t = np.asarray(regression_targets, np.float64).reshape(-1, 4)
    valid, fg = labels >= 0, labels > 0
    m = logits.max(axis=1, keepdims=True)
    log_softmax = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
    ce = -log_softmax[np.arange(n), np.maximum(labels, 0)]
    cls = ce[valid].sum() / max(valid.sum(), 1)
    own = reg[np.arange(n), np.maximum(labels, 0)]
    box = smooth_l1(own[fg] - t[fg], beta).sum()
    denom = valid.sum() if normalization == "torchvision" else fg.sum()
    return cls, box / max(denom, 1)
