"""``patch_torchvision(pipeline=True)``: batched replacements for four methods of torchvision's
``RegionProposalNetwork`` and ``RoIHeads`` that loop over the images of a batch.

Each takes the method's own arguments and reads its settings from ``self`` (top-n, thresholds,
matcher, sampler, box coder), so a detector configured by the user keeps its configuration.

* ``filter_proposals``: one per-level top-k, clip and filter over all images, one NMS over all
  (image, level) groups (``batched_nms_padded``), the per-image top ``post_nms_top_n``. Same
  boxes and order as torchvision's (our NMS keeps equal scores in input order).
* ``postprocess_detections``: one NMS over all (image, class) groups of the batch; the per-image
  top ``detections_per_img``. Same detections; equal scores may come in another order.
* ``assign_targets_to_anchors``: ``match_boxes_batched`` for all images in one launch when they
  share their anchors (torchvision's anchor generator gives every image of a batch the same).
  Deterministic: the same labels and matched boxes as torchvision's.
* ``select_training_samples``: :func:`frcnn_fast.detection.proposal_targets`, whose balanced
  sampler draws all images at once: another random draw than torchvision's sampler, with the
  same counts and rules. Background rows' regression targets are 0 (torchvision encodes them
  against ground truth 0); the losses read only the foreground rows.
"""

from typing import Dict, List, Tuple

import torch
from torch import Tensor

from .detection.proposal_targets import proposal_targets
from .detection.proposals import _clip_and_filter, _nms_and_keep_top, _rank_in_image, _top
from .ops.match import match_boxes, match_boxes_batched
from .ops.nms import batched_nms


def _cut(counts: Tensor, *tensors: Tensor):
    """Rows of ``[B, K, ...]`` tensors cut to each image's count: lists per tensor."""
    n = counts.tolist()
    return tuple([t[i, : n[i]] for i in range(len(n))] for t in tensors)


def filter_proposals(
    self, proposals: Tensor, objectness: Tensor, image_shapes, num_anchors_per_level: List[int]
) -> Tuple[List[Tensor], List[Tensor]]:
    b = proposals.shape[0]
    device = proposals.device
    objectness = objectness.detach().reshape(b, -1)
    pre, post = self.pre_nms_top_n(), self.post_nms_top_n()
    picks, levels, start = [], [], 0
    for lvl, n in enumerate(num_anchors_per_level):
        k = min(pre, n)
        picks.append(_top(objectness[:, start : start + n], k) + start)
        levels.append(torch.full((k,), lvl, dtype=torch.int64, device=device))
        start += n
    idx = torch.cat(picks, dim=1)
    level = torch.cat(levels)
    boxes = torch.gather(proposals, 1, idx[..., None].expand(-1, -1, 4))
    sizes = [(int(h), int(w)) for h, w in image_shapes]
    boxes, scores, valid = _clip_and_filter(
        boxes, torch.gather(objectness, 1, idx), sizes, self.min_size, self.score_thresh
    )
    boxes, scores, counts = _nms_and_keep_top(
        boxes, scores, valid, level, len(num_anchors_per_level), self.nms_thresh, post
    )
    return _cut(counts, boxes, scores)


def postprocess_detections(
    self, class_logits: Tensor, box_regression: Tensor, proposals: List[Tensor], image_shapes
) -> Tuple[List[Tensor], List[Tensor], List[Tensor]]:
    device = class_logits.device
    num_classes = class_logits.shape[-1]
    b = len(proposals)
    per_image = torch.tensor([p.shape[0] for p in proposals], device=device)
    image_of = torch.repeat_interleave(torch.arange(b, device=device), per_image)
    boxes = self.box_coder.decode(box_regression, proposals)  # [N, C, 4], torchvision's rounding
    scores = torch.softmax(class_logits, -1)
    hw = torch.tensor([[float(h), float(w)] for h, w in image_shapes], dtype=boxes.dtype)
    hw = hw.to(device)[image_of][:, None, :]  # [N, 1, 2]
    zero = boxes.new_zeros(())
    x = torch.minimum(torch.maximum(boxes[..., 0::2], zero), hw[..., 1:2])
    y = torch.minimum(torch.maximum(boxes[..., 1::2], zero), hw[..., 0:1])
    boxes = torch.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], dim=-1)[:, 1:]
    scores = scores[:, 1:]
    labels = torch.arange(1, num_classes, device=device).expand_as(scores)
    image_of = image_of[:, None].expand_as(scores)
    boxes, scores = boxes.reshape(-1, 4), scores.reshape(-1)
    labels, image_of = labels.reshape(-1), image_of.reshape(-1)
    # torchvision: score > thresh, then width and height >= 1e-2
    ok = scores > self.score_thresh
    ok &= (boxes[:, 2] - boxes[:, 0] >= 1e-2) & (boxes[:, 3] - boxes[:, 1] >= 1e-2)
    ok = torch.nonzero(ok).squeeze(1)
    boxes, scores, labels, image_of = boxes[ok], scores[ok], labels[ok], image_of[ok]
    keep = batched_nms(boxes, scores, image_of * num_classes + labels, self.nms_thresh)
    order, img, rank = _rank_in_image(image_of[keep], b)
    keep = keep[order][rank < self.detections_per_img]
    counts = torch.zeros(b, dtype=torch.int64, device=device)
    counts.scatter_add_(0, image_of[keep], torch.ones_like(keep))
    split = counts.tolist()
    return (
        list(boxes[keep].split(split)),
        list(scores[keep].split(split)),
        list(labels[keep].split(split)),
    )


def _pad(gts: List[Tensor]) -> Tensor:
    width = max(1, max(g.shape[0] for g in gts))
    out = gts[0].new_zeros((len(gts), width, 4))
    for i, g in enumerate(gts):
        out[i, : g.shape[0]] = g
    return out


def assign_targets_to_anchors(
    self, anchors: List[Tensor], targets: List[Dict[str, Tensor]]
) -> Tuple[List[Tensor], List[Tensor]]:
    matcher = self.proposal_matcher
    args = (matcher.high_threshold, matcher.low_threshold, matcher.allow_low_quality_matches)
    gts = [t["boxes"] for t in targets]
    shared = all(a.shape == anchors[0].shape for a in anchors) and all(
        torch.equal(a, anchors[0]) for a in anchors[1:]
    )
    if shared:
        matches, _ = match_boxes_batched(gts, anchors[0], *args)
    else:
        matches = [match_boxes(g, a, *args)[0] for g, a in zip(gts, anchors)]
    labels, matched = [], []
    padded = _pad(gts)
    for i in range(len(anchors)):
        m = matches[i]
        lbl = (m >= 0).to(torch.float32)
        lbl = torch.where(m == -2, -1.0, lbl)  # between the thresholds: ignored
        # torchvision: gt[0] for the unmatched (read by no loss), zeros without ground truths
        matched.append(padded[i][m.clamp(min=0)])
        labels.append(lbl)
    return labels, matched


def select_training_samples(self, proposals: List[Tensor], targets):
    self.check_targets(targets)
    dtype = proposals[0].dtype
    gt_boxes = [t["boxes"].to(dtype) for t in targets]
    gt_labels = [t["labels"] for t in targets]
    matcher, sampler = self.proposal_matcher, self.fg_bg_sampler
    boxes, labels, regression, matched = proposal_targets(
        proposals,
        gt_boxes,
        gt_labels,
        fg_iou=matcher.high_threshold,
        bg_iou_high=matcher.low_threshold,
        bg_iou_low=0.0,
        batch_size_per_image=sampler.batch_size_per_image,
        positive_fraction=sampler.positive_fraction,
        weights=self.box_coder.weights,
    )
    # torchvision hands the mask head ground-truth 0 for background rows
    matched = [m.clamp(min=0) for m in matched]
    return boxes, matched, labels, regression


def methods():
    """``{(class, name): our function}`` for the classes as torchvision defines them now."""
    from torchvision.models.detection.roi_heads import RoIHeads
    from torchvision.models.detection.rpn import RegionProposalNetwork

    return {
        (RegionProposalNetwork, "filter_proposals"): filter_proposals,
        (RegionProposalNetwork, "assign_targets_to_anchors"): assign_targets_to_anchors,
        (RoIHeads, "postprocess_detections"): postprocess_detections,
        (RoIHeads, "select_training_samples"): select_training_samples,
    }
