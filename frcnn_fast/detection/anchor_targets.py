"""RPN training targets: which anchors are object / background / ignored, and their deltas."""

from typing import List, Tuple

import torch
from torch import Tensor

from ..ops.box_coding import encode_boxes
from ..ops.match import match_boxes_batched
from ._inputs import (
    check_boxes,
    check_count,
    check_fraction,
    check_gt_list,
    check_image_sizes,
    check_ordered,
    pad_boxes,
)
from .anchors import anchors_inside
from .sampling import balanced_sample


def anchor_targets(
    anchors: Tensor,
    gt_boxes: List[Tensor],
    image_sizes,
    *,
    high: float = 0.7,
    low: float = 0.3,
    batch_size_per_image: int = 256,
    positive_fraction: float = 0.5,
    allowed_border: float = 0.0,
    sample: bool = True,
    generator=None,
) -> Tuple[Tensor, Tensor, Tensor]:
    """Labels, matched ground truths and regression targets of ``anchors`` for each image.

    ``anchors[A, 4]`` are shared by the images; ``gt_boxes[b]`` is ``[G_b, 4]``;
    ``image_sizes[b]`` is the real ``(height, width)`` of image b (not the padded batch's).

    An anchor is eligible in image b iff it lies inside that image, up to ``allowed_border``
    pixels. Matching runs over the eligible anchors only (an ineligible anchor neither matches nor
    rescues a ground truth): IoU >= ``high`` -> 1, IoU < ``low`` -> 0, in between -> -1, and each
    ground truth's best anchors (ties included, best IoU > 0) become positive, matched to their
    own best ground truth. Ineligible anchors are -1. With ``sample``, at most
    ``batch_size_per_image`` labels per image stay >= 0, at most ``positive_fraction`` of them
    positive, drawn with ``generator`` (a ``torch.Generator`` on the anchors' device; the global
    one when None); no loop over images and no host sync.

    Returns ``labels`` int64 ``[B, A]`` in {1, 0, -1}; ``matched_gt`` int64 ``[B, A]``: the
    ground-truth index of every positive before sampling, -1 elsewhere; ``bbox_targets``
    ``[B, A, 4]`` (anchors' dtype): ``encode_boxes(anchor, gt[matched_gt])`` with weights
    (1, 1, 1, 1) where ``matched_gt >= 0``, 0 elsewhere. An image without ground truths has every
    eligible anchor negative; an image with no eligible anchor has every label -1.
    """
    check_boxes(anchors, "anchors")
    gt_boxes = check_gt_list(gt_boxes)
    sizes = check_image_sizes(image_sizes, len(gt_boxes), "gt_boxes")
    high = check_fraction(high, "high")
    low = check_fraction(low, "low")
    check_ordered("low", low, "high", high)
    batch_size_per_image = check_count(batch_size_per_image, "batch_size_per_image")
    positive_fraction = check_fraction(positive_fraction, "positive_fraction")

    num_images, num_anchors = len(gt_boxes), anchors.shape[0]
    device = anchors.device
    if num_images == 0:
        empty = torch.zeros((0, num_anchors), dtype=torch.int64, device=device)
        return empty, empty.clone(), anchors.new_zeros((0, num_anchors, 4))
    gts = [g.to(dtype=anchors.dtype, device=device) for g in gt_boxes]

    inside = torch.stack([anchors_inside(anchors, s, allowed_border) for s in sizes])
    # Ineligible anchors are replaced by an empty box: its IoU with any ground truth is 0, so it
    # is below every threshold and cannot be a ground truth's best (a best IoU of 0 rescues
    # nothing). One matcher call per distinct image size; a batch of one size is one call.
    matches = torch.empty((num_images, num_anchors), dtype=torch.int64, device=device)
    groups = {}
    for b, s in enumerate(sizes):
        groups.setdefault((float(s[0]), float(s[1])), []).append(b)
    for members in groups.values():
        masked = torch.where(inside[members[0], :, None], anchors, torch.zeros_like(anchors))
        m, _ = match_boxes_batched([gts[b] for b in members], masked, high, low, True)
        matches[members] = m

    labels = torch.full_like(matches, -1)
    labels = torch.where(inside & (matches >= 0), 1, labels)
    labels = torch.where(inside & (matches == -1), 0, labels)
    matched_gt = torch.where(labels == 1, matches, -1)

    padded = pad_boxes(gts)  # [B, max(G_b, 1), 4]
    target_gt = torch.gather(
        padded, 1, matched_gt.clamp(min=0)[:, :, None].expand(num_images, num_anchors, 4)
    )
    deltas = encode_boxes(
        anchors.expand(num_images, num_anchors, 4).reshape(-1, 4), target_gt.reshape(-1, 4)
    ).reshape(num_images, num_anchors, 4)
    bbox_targets = torch.where((matched_gt >= 0)[:, :, None], deltas, torch.zeros_like(deltas))

    if sample:
        labels = balanced_sample(labels, batch_size_per_image, positive_fraction, generator)
    return labels, matched_gt, bbox_targets
