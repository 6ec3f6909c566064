"""The proposal layer: RPN outputs -> per-image proposals, batched over images and levels.

Two orders of operations are offered (``order``):

* ``"topk_first"`` (default, torchvision's ``RegionProposalNetwork.filter_proposals``): per
  level, the ``pre_nms_top_n`` anchors of highest objectness; decode, clip to the image, drop
  boxes smaller than ``min_size`` and scores below ``score_thresh``; NMS within (image, level);
  the ``post_nms_top_n`` best per image.
* ``"filter_first"`` (the Faster R-CNN tutorials): decode, clip and drop small boxes over all
  anchors first, then take the per-level top ``pre_nms_top_n`` among the survivors, then NMS and
  the post-NMS top-k. With one level and 12000/2000 (train) or 6000/300 (test), min size 16
  times the image scale, this is the tutorials' proposal layer.

Ranking is a stable descending sort of the objectness logits (ties in anchor order, NaN ranked
as -inf); NMS ranks by sigmoid probability with ties in candidate order (our NMS is stable).
"""

import inspect
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from .._checks import check_number, check_tensor
from ..ops.box_coding import decode_boxes
from ..ops.nms import batched_nms_padded
from ._inputs import check_boxes, check_count, check_fraction, check_image_sizes

ORDERS = ("topk_first", "filter_first")


def _check_inputs(
    objectness, deltas, anchors, image_sizes, pre, post, nms_thresh, min_size, per_level, order
):
    check_tensor(objectness, "objectness")
    if objectness.dim() != 2:
        raise ValueError(f"objectness must have shape [B, A], got {tuple(objectness.shape)}")
    check_boxes(deltas, "deltas", leading=2)
    check_boxes(anchors, "anchors")
    b, a = objectness.shape
    if tuple(deltas.shape[:2]) != (b, a):
        raise ValueError(
            f"deltas must have shape [B, A, 4] = [{b}, {a}, 4] like objectness, got "
            f"{tuple(deltas.shape)}"
        )
    if anchors.shape[0] != a:
        raise ValueError(f"anchors must have A = {a} rows like objectness, got {anchors.shape[0]}")
    sizes = check_image_sizes(image_sizes, b, "objectness")
    check_count(pre, "pre_nms_top_n")
    check_count(post, "post_nms_top_n")
    check_fraction(nms_thresh, "nms_thresh")
    check_number(min_size, "min_size")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    if per_level is None:
        per_level = [a]
    per_level = [check_count(n, "num_anchors_per_level") for n in per_level]
    if sum(per_level) != a:
        raise ValueError(
            f"num_anchors_per_level must sum to the number of anchors {a}, got {sum(per_level)}"
        )
    return sizes, per_level


def _nan_as_lowest(keys: Tensor) -> Tensor:
    """NaN replaced by -inf (tied with it); every other value, infinities included, kept."""
    return torch.where(torch.isnan(keys), float("-inf"), keys)


def _rank(keys: Tensor) -> Tensor:
    """Stable descending order of each row, NaN ranked as -inf."""
    return torch.sort(_nan_as_lowest(keys), dim=1, descending=True, stable=True).indices


def _top(keys: Tensor, k: int) -> Tensor:
    """``_rank(keys)[:, :k]`` without sorting whole rows.

    On CPU, first one ``topk`` of k + 1: when its values hold no NaN and no two equal ones, the
    k best are strictly above every other key and distinct, so their order is the stable one.
    That is the usual case for real logits, and it is one pass over the row on the calling
    thread, where the exact path below is a dozen passes, most of them forked to the intra-op
    threads (each fork a stall on a busy machine). Elsewhere (CUDA), and whenever there is a
    tie or a NaN, the exact path: the k-th largest key by ``topk``, the keys above it and the
    first tied ones in index order, then a stable sort of those k. The branch reads the values
    on the host, which CUDA graphs, the padded form's no-sync promise and a ``fullgraph``
    compile forbid, so only eager CPU takes it."""
    n = keys.shape[1]
    if k == 0 or k >= n:
        return _rank(keys)[:, :k]
    if keys.device.type == "cpu" and not torch.compiler.is_compiling():
        values, idx = torch.topk(keys, k + 1, dim=1)
        # topk ranks NaN above everything: a row with a NaN has it first
        if not bool(torch.isnan(values[:, 0]).any() | (values[:, 1:] == values[:, :-1]).any()):
            return idx[:, :k]
    keys = _nan_as_lowest(keys)
    kth = torch.topk(keys, k, dim=1, sorted=False).values.amin(dim=1, keepdim=True)
    above = keys > kth
    tied = keys == kth
    room = k - above.sum(dim=1, keepdim=True)
    take = above | (tied & (torch.cumsum(tied.to(torch.int64), dim=1) <= room))
    # exactly k taken per row; the largest of (n - index) over them lists them by index
    position = torch.arange(n, 0, -1, device=keys.device).expand_as(keys)
    idx = torch.topk(torch.where(take, position, 0), k, dim=1).indices
    order = torch.sort(torch.gather(keys, 1, idx), dim=1, descending=True, stable=True).indices
    return torch.gather(idx, 1, order)


def _clip_and_filter(boxes, logits, sizes, min_size, score_thresh):
    """Clip ``boxes[B, K, 4]`` to each image; valid = large enough and score >= score_thresh."""
    hw = torch.tensor(sizes, dtype=boxes.dtype, device=boxes.device).reshape(-1, 1, 2)
    zero = torch.zeros((), dtype=boxes.dtype, device=boxes.device)
    x = torch.minimum(torch.maximum(boxes[..., 0::2], zero), hw[..., 1:2])
    y = torch.minimum(torch.maximum(boxes[..., 1::2], zero), hw[..., 0:1])
    boxes = torch.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], dim=-1)
    scores = torch.sigmoid(logits)
    valid = (boxes[..., 2] - boxes[..., 0] >= min_size) & (
        boxes[..., 3] - boxes[..., 1] >= min_size
    )
    # >= as torchvision: score_thresh 0 keeps every box
    valid &= scores >= score_thresh
    return boxes, scores, valid


def _decode(deltas, anchors_bk):
    b, k = deltas.shape[:2]
    return decode_boxes(deltas.reshape(-1, 4), anchors_bk.reshape(-1, 4)).reshape(b, k, 4)


def _candidates(objectness, deltas, anchors, sizes, pre, min_size, score_thresh, per_level, order):
    """The per-level top-k: ``boxes[B, K, 4]``, ``scores[B, K]``, ``valid[B, K]``, ``level[K]``
    (K = sum over levels of min(pre, n_l), fixed by the shapes alone)."""
    b, a = objectness.shape
    device = objectness.device
    if order == "filter_first":
        all_boxes = _decode(deltas, anchors.expand(b, a, 4))
        all_boxes, all_scores, all_valid = _clip_and_filter(
            all_boxes, objectness, sizes, min_size, score_thresh
        )
    picks, levels = [], []
    start = 0
    for lvl, n in enumerate(per_level):
        k = min(pre, n)
        if order == "topk_first":
            top = _top(objectness[:, start : start + n], k)
        else:
            # survivors first (a stable sort on validity keeps the objectness order inside)
            idx = _rank(objectness[:, start : start + n])
            ok = torch.gather(all_valid[:, start : start + n], 1, idx)
            top = torch.gather(
                idx, 1, torch.sort((~ok).to(torch.uint8), dim=1, stable=True).indices
            )
            top = top[:, :k]
        picks.append(top + start)
        levels.append(torch.full((k,), lvl, dtype=torch.int64, device=device))
        start += n
    idx = (
        torch.cat(picks, dim=1) if picks else torch.zeros((b, 0), dtype=torch.int64, device=device)
    )
    level = torch.cat(levels) if levels else torch.zeros((0,), dtype=torch.int64, device=device)
    logits = torch.gather(objectness, 1, idx)
    if order == "topk_first":
        boxes = _decode(torch.gather(deltas, 1, idx[..., None].expand(-1, -1, 4)), anchors[idx])
        boxes, scores, valid = _clip_and_filter(boxes, logits, sizes, min_size, score_thresh)
    else:
        boxes = torch.gather(all_boxes, 1, idx[..., None].expand(-1, -1, 4))
        scores = torch.gather(all_scores, 1, idx)
        valid = torch.gather(all_valid, 1, idx)
    return boxes, scores, valid, level


def _rank_in_image(image_of: Tensor, num_images: int):
    """Given the image of each entry of a score-ordered list (``num_images`` = padding), the
    stable per-image order and each entry's rank within its image."""
    order = torch.sort(image_of, stable=True).indices
    img = image_of[order]
    counts = torch.zeros(num_images + 1, dtype=torch.int64, device=image_of.device)
    counts.scatter_add_(0, img, torch.ones_like(img))
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(img.numel(), device=img.device) - starts[img]
    return order, img, rank


def generate_proposals_padded(
    objectness: Tensor,
    deltas: Tensor,
    anchors: Tensor,
    image_sizes,
    *,
    pre_nms_top_n: int,
    post_nms_top_n: int,
    nms_thresh: float = 0.7,
    min_size: float,
    score_thresh: float = 0.0,
    num_anchors_per_level: Optional[List[int]] = None,
    order: str = "topk_first",
) -> Tuple[Tensor, Tensor, Tensor]:
    """Proposals of each image from the RPN's ``objectness[B, A]`` logits and ``deltas[B, A, 4]``
    (weights 1, 1, 1, 1) on ``anchors[A, 4]`` shared by the images, with fixed shapes and no
    host sync (``torch.compile``, CUDA graphs): ``boxes[B, post_nms_top_n, 4]``,
    ``scores[B, post_nms_top_n]`` (sigmoid) and ``counts[B]`` int64; row b holds its
    ``counts[b]`` proposals in decreasing score, then zero boxes with score 0. One
    ``batched_nms_padded`` over all (image, level) groups."""
    sizes, per_level = _check_inputs(
        objectness, deltas, anchors, image_sizes, pre_nms_top_n, post_nms_top_n, nms_thresh,
        min_size, num_anchors_per_level, order,
    )  # fmt: skip
    objectness, deltas = objectness.detach(), deltas.detach()
    boxes, scores, valid, level = _candidates(
        objectness, deltas, anchors, sizes, pre_nms_top_n, min_size, score_thresh, per_level, order
    )
    return _nms_and_keep_top(
        boxes, scores, valid, level, len(per_level), nms_thresh, post_nms_top_n
    )


def _nms_and_keep_top(
    boxes: Tensor,
    scores: Tensor,
    valid: Tensor,
    level: Tensor,
    num_levels: int,
    nms_thresh: float,
    post_nms_top_n: int,
) -> Tuple[Tensor, Tensor, Tensor]:
    """NMS within each (image, level) group of the candidates ``boxes[B, K, 4]`` (``valid`` ones
    only; ``level[K]``), then each image's best ``post_nms_top_n``: padded boxes, scores and
    counts as ``generate_proposals_padded`` returns them. One ``batched_nms_padded``, no sync."""
    b, k = boxes.shape[0], boxes.shape[1]
    n = b * k
    # invalid candidates get score -inf, which the score_threshold -inf leaves out of NMS
    nms_scores = torch.where(valid, scores, float("-inf")).reshape(-1)
    groups = torch.arange(b, device=boxes.device).repeat_interleave(k) * num_levels
    groups = groups + level.repeat(b)
    keep, _ = batched_nms_padded(
        boxes.reshape(-1, 4), nms_scores, groups, nms_thresh, n, float("-inf")
    )
    image = torch.where(keep >= 0, keep // max(k, 1), b)
    order_, img, rank = _rank_in_image(image, b)
    src = keep[order_]
    ok = (img < b) & (rank < post_nms_top_n)
    # (image, rank) -> slot in a [B * post + 1] buffer; the last slot takes what is dropped
    slot = torch.where(ok, img * post_nms_top_n + rank, b * post_nms_top_n)
    src = torch.where(ok, src, 0)
    out_boxes = boxes.new_zeros((b * post_nms_top_n + 1, 4))
    out_scores = scores.new_zeros((b * post_nms_top_n + 1,))
    if n:
        out_boxes = out_boxes.index_copy(0, slot, boxes.reshape(-1, 4)[src])
        out_scores = out_scores.index_copy(0, slot, scores.reshape(-1)[src])
    counts = torch.zeros(b + 1, dtype=torch.int64, device=boxes.device)
    counts = counts.scatter_add(0, torch.where(ok, img, b), ok.to(torch.int64))[:b]
    return (
        out_boxes[:-1].reshape(b, post_nms_top_n, 4),
        out_scores[:-1].reshape(b, post_nms_top_n),
        counts,
    )


def _takes_the_arguments_of(padded):
    """``generate_proposals`` shows (``help``, ``inspect.signature``) the padded form's
    arguments, with its own return type."""

    def decorate(fn):
        fn.__signature__ = inspect.signature(padded).replace(
            return_annotation=inspect.signature(fn).return_annotation
        )
        return fn

    return decorate


@_takes_the_arguments_of(generate_proposals_padded)
def generate_proposals(*args, **kwargs) -> Tuple[List[Tensor], List[Tensor]]:
    """``generate_proposals_padded`` (same arguments) cut to each image's count: a list of
    ``[K_b, 4]`` boxes and a list of ``[K_b]`` sigmoid scores, in decreasing score. The cut is
    the one host sync. With ``num_anchors_per_level`` and torchvision's settings the result is
    torchvision's ``filter_proposals``'. Zero anchors or ``post_nms_top_n=0`` give empty
    tensors."""
    boxes, scores, counts = generate_proposals_padded(*args, **kwargs)
    counts = counts.tolist()
    return (
        [boxes[i, :n] for i, n in enumerate(counts)],
        [scores[i, :n] for i, n in enumerate(counts)],
    )
