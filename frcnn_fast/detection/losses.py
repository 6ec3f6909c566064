"""Faster R-CNN losses: smooth L1, the RPN loss and the box-head loss.

``normalization`` selects how the box losses are averaged:

* ``"torchvision"`` (default): the smooth-L1 sum over positives divided by the number of sampled
  anchors (RPN, whole batch) or of RoIs (box head); ``beta`` 1/9 in both.
* ``"tutorial"``: the smooth-L1 sum divided by the number of positives (the tutorials' N_reg;
  they use ``beta=1`` and weigh the box loss by lambda = 10 when adding it to the total).

The classification losses are means over the sampled entries (labels >= 0) in both. A division
by a count of 0 divides by 1 instead, so an empty sample gives a loss of 0, never NaN. Nothing
here syncs with the host: samples are masks, not index lists.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_number, check_tensor

NORMALIZATIONS = ("torchvision", "tutorial")


def smooth_l1_loss(input: Tensor, target: Tensor, beta: float = 1.0 / 9, reduction: str = "sum"):
    """``0.5 x^2 / beta`` where ``|x| < beta``, else ``|x| - 0.5 beta`` (x = input - target);
    ``beta=0`` is the L1 loss. ``reduction``: ``"none"``, ``"sum"`` or ``"mean"``."""
    check_tensor(input, "input")
    check_tensor(target, "target")
    check_number(beta, "beta")
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if input.shape != target.shape:
        raise ValueError(
            f"input and target must have the same shape, got {tuple(input.shape)} and "
            f"{tuple(target.shape)}"
        )
    x = (input - target).abs()
    if beta == 0:
        loss = x
    else:
        loss = torch.where(x < beta, 0.5 * x * x / beta, x - 0.5 * beta)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    raise ValueError(f"reduction must be 'none', 'sum' or 'mean', got {reduction!r}")


def _cat(x, name):
    if isinstance(x, (list, tuple)):
        return torch.cat(list(x), dim=0)
    check_tensor(x, name)
    return x


def _norm(normalization):
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")


def rpn_loss(
    objectness: Tensor,
    deltas: Tensor,
    labels: Tensor,
    bbox_targets: Tensor,
    *,
    beta: float = 1.0 / 9,
    normalization: str = "torchvision",
):
    """``(objectness_loss, box_loss)`` of the RPN.

    ``objectness[B, A]`` logits, ``deltas[B, A, 4]``, ``labels[B, A]`` from ``anchor_targets``
    (1 / 0 sampled, -1 not), ``bbox_targets[B, A, 4]``. Objectness: binary cross-entropy mean
    over the sampled anchors; box: smooth L1 over the sampled positives, normalised as
    ``normalization`` says.
    """
    _norm(normalization)
    objectness = objectness.reshape(-1)
    labels = _cat(labels, "labels").reshape(-1)
    deltas = deltas.reshape(-1, 4)
    bbox_targets = _cat(bbox_targets, "bbox_targets").reshape(-1, 4)
    if not (objectness.shape[0] == labels.shape[0] == deltas.shape[0] == bbox_targets.shape[0]):
        raise ValueError(
            "objectness, deltas, labels and bbox_targets must describe the same anchors, got "
            f"{objectness.shape[0]}, {deltas.shape[0]}, {labels.shape[0]} and "
            f"{bbox_targets.shape[0]}"
        )
    sampled = labels >= 0
    pos = labels == 1
    n_sampled = sampled.sum().clamp(min=1)
    bce = F.binary_cross_entropy_with_logits(objectness, pos.to(objectness.dtype), reduction="none")
    obj_loss = torch.where(sampled, bce, 0.0).sum() / n_sampled
    box = smooth_l1_loss(deltas, bbox_targets.to(deltas.dtype), beta, reduction="none").sum(1)
    box_sum = torch.where(pos, box, 0.0).sum()
    denom = n_sampled if normalization == "torchvision" else pos.sum().clamp(min=1)
    return obj_loss, box_sum / denom


def box_head_loss(
    class_logits: Tensor,
    box_regression: Tensor,
    labels,
    regression_targets,
    *,
    beta: float = 1.0 / 9,
    normalization: str = "torchvision",
):
    """``(classification_loss, box_loss)`` of the box head.

    ``class_logits[N, C]``, ``box_regression[N, 4 * C]`` (one box per class), ``labels[N]``
    int64 (0 background, -1 ignored), ``regression_targets[N, 4]``; lists (one tensor per image)
    are concatenated. Classification: cross-entropy mean over labels >= 0; box: smooth L1 of the
    true class's box on the foreground RoIs, normalised as ``normalization`` says.
    """
    _norm(normalization)
    labels = _cat(labels, "labels").reshape(-1)
    regression_targets = _cat(regression_targets, "regression_targets").reshape(-1, 4)
    check_tensor(class_logits, "class_logits")
    check_tensor(box_regression, "box_regression")
    n, c = class_logits.shape
    if box_regression.shape != (n, 4 * c):
        raise ValueError(
            f"box_regression must have shape [N, 4 * C] = [{n}, {4 * c}], got "
            f"{tuple(box_regression.shape)}"
        )
    if labels.shape[0] != n or regression_targets.shape[0] != n:
        raise ValueError(
            f"labels and regression_targets must have N = {n} rows, got {labels.shape[0]} and "
            f"{regression_targets.shape[0]}"
        )
    valid = labels >= 0
    ce = F.cross_entropy(class_logits, labels.clamp(min=0), reduction="none")
    cls_loss = torch.where(valid, ce, 0.0).sum() / valid.sum().clamp(min=1)
    fg = labels > 0
    own = torch.gather(
        box_regression.reshape(n, c, 4), 1, labels.clamp(min=0)[:, None, None].expand(n, 1, 4)
    ).squeeze(1)
    box = smooth_l1_loss(own, regression_targets.to(own.dtype), beta, reduction="none").sum(1)
    box_sum = torch.where(fg, box, 0.0).sum()
    denom = valid.sum().clamp(min=1) if normalization == "torchvision" else fg.sum().clamp(min=1)
    return cls_loss, box_sum / denom
