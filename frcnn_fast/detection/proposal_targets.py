"""Second-stage training targets: sample proposals and give them class labels and deltas."""

from typing import List

import torch
from torch import Tensor

from .._checks import check_tensor
from ..ops.box_coding import encode_boxes
from ..ops.match import match_boxes
from ._inputs import check_boxes, check_count, check_fraction, check_gt_list, check_ordered
from .sampling import balanced_sample


def proposal_targets(
    proposals: List[Tensor],
    gt_boxes: List[Tensor],
    gt_labels: List[Tensor],
    *,
    fg_iou: float = 0.5,
    bg_iou_high: float = 0.5,
    bg_iou_low: float = 0.0,
    batch_size_per_image: int = 512,
    positive_fraction: float = 0.25,
    weights=(10.0, 10.0, 5.0, 5.0),
    sample: bool = True,
    generator=None,
):
    """Sampled RoIs of each image and their targets.

    Per image: the ground truths are appended to the proposals; each box is matched to its best
    ground truth; IoU >= ``fg_iou`` is foreground (label = that ground truth's class),
    ``bg_iou_low <= IoU < bg_iou_high`` background (label 0), anything else ignored. An image
    without ground truths is all background. Then at most ``batch_size_per_image`` boxes, at
    most ``positive_fraction`` foreground (``generator`` draws; with ``sample=False`` every
    foreground and background box is kept). torchvision's settings: 0.5 / 0.5 / 0.0, 512, 0.25;
    the tutorials': background in [0.1, 0.5) (or [0.0, 0.5)), 128 per image.

    Returns four lists (one tensor per image, boxes in ascending index order of the concatenated
    proposals + ground truths): ``boxes[S_b, 4]``, ``labels[S_b]`` int64, ``regression_targets
    [S_b, 4]`` (``encode_boxes(box, gt, weights)`` for foreground, 0 for background) and
    ``matched_idxs[S_b]`` int64 (the ground truth of a foreground box, -1 for background).
    Splitting into per-image tensors is the one host sync.
    """
    for name, v in (("proposals", proposals), ("gt_labels", gt_labels)):
        if not isinstance(v, (list, tuple)):
            raise TypeError(f"{name} must be a list of tensors, one per image")
    gt_boxes = check_gt_list(gt_boxes)
    if not (len(proposals) == len(gt_boxes) == len(gt_labels)):
        raise ValueError(
            "proposals, gt_boxes and gt_labels must have one entry per image, got "
            f"{len(proposals)}, {len(gt_boxes)} and {len(gt_labels)}"
        )
    for i, (p, g, lab) in enumerate(zip(proposals, gt_boxes, gt_labels)):
        check_boxes(p, f"proposals[{i}]")
        check_tensor(lab, f"gt_labels[{i}]")
        if tuple(lab.shape) != (g.shape[0],):
            raise ValueError(
                f"gt_labels[{i}] must have shape [{g.shape[0]}] like gt_boxes[{i}], got "
                f"{tuple(lab.shape)}"
            )
    fg_iou = check_fraction(fg_iou, "fg_iou")
    bg_iou_high = check_fraction(bg_iou_high, "bg_iou_high")
    bg_iou_low = check_fraction(bg_iou_low, "bg_iou_low")
    check_ordered("bg_iou_low", bg_iou_low, "bg_iou_high", bg_iou_high)
    check_ordered("bg_iou_high", bg_iou_high, "fg_iou", fg_iou)
    batch_size_per_image = check_count(batch_size_per_image, "batch_size_per_image")
    positive_fraction = check_fraction(positive_fraction, "positive_fraction")
    num_images = len(proposals)
    if num_images == 0:
        return [], [], [], []

    boxes, labels, matched, targets = [], [], [], []
    # One matcher launch per image (the proposals differ per image); no host sync.
    for p, g, lab in zip(proposals, gt_boxes, gt_labels):
        g = g.to(dtype=p.dtype, device=p.device)
        lab = lab.to(device=p.device, dtype=torch.int64)
        b = torch.cat([p, g])
        m, max_iou = match_boxes(g, b, fg_iou, bg_iou_high, False)
        fg = m >= 0
        lbl = torch.where(fg, lab[m.clamp(min=0)] if g.shape[0] else 0, -1)
        bg = m == -1
        if g.shape[0]:
            bg = bg & (max_iou >= bg_iou_low)
        lbl = torch.where(bg, 0, lbl)
        gt_of = g[m.clamp(min=0)] if g.shape[0] else torch.zeros_like(b)
        t = torch.where(fg[:, None], encode_boxes(b, gt_of, weights), torch.zeros_like(b))
        boxes.append(b)
        labels.append(lbl)
        matched.append(torch.where(fg, m, -1))
        targets.append(t)

    counts = [b.shape[0] for b in boxes]
    padded = torch.nn.utils.rnn.pad_sequence(labels, batch_first=True, padding_value=-1)
    kind = torch.where(padded > 0, 1, padded)
    if sample:
        kind = balanced_sample(kind, batch_size_per_image, positive_fraction, generator)
    keep = kind >= 0
    flat = torch.nonzero(keep.reshape(-1)).squeeze(1)
    width = padded.shape[1]
    # positions in the concatenation of the per-image (unpadded) tensors
    starts = torch.tensor([0] + counts[:-1], device=flat.device).cumsum(0)
    pos = flat % max(width, 1) + starts[flat // max(width, 1)]
    split = keep.sum(dim=1).tolist()

    def pick(xs):
        return list(torch.cat(xs)[pos].split(split))

    return pick(boxes), pick(labels), pick(targets), pick(matched)
