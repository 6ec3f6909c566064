"""Balanced positive / negative sampling over a whole batch at once.

Each row (image) of a ``[B, N]`` label tensor (1 positive, 0 negative, -1 ignored) keeps at most
``round_down(batch_size_per_image * positive_fraction)`` positives drawn uniformly at random, then
fills up to ``batch_size_per_image`` with negatives; everything else becomes -1.

How it avoids a loop over images and a host sync: one random key per element, offset by its class
(positives in [0, 1), negatives in [1, 2), ignored ones at 3), one sort per row; an element's
rank within its class is its position in the sorted row minus the number of elements of the
classes before it. Keeping ranks below the per-row quotas is a draw without replacement.
"""

import torch
from torch import Tensor


def balanced_sample(
    labels: Tensor, batch_size_per_image: int, positive_fraction: float, generator=None
) -> Tensor:
    """``labels`` with all but the sampled positives and negatives set to -1 (same shape)."""
    if labels.dim() != 2:
        raise ValueError(f"labels must have shape [B, N], got {tuple(labels.shape)}")
    pos = labels == 1
    neg = labels == 0
    num_pos = pos.sum(dim=1, keepdim=True)
    num_neg = neg.sum(dim=1, keepdim=True)
    max_pos = int(batch_size_per_image * positive_fraction)
    take_pos = num_pos.clamp(max=max_pos)
    take_neg = torch.minimum(num_neg, batch_size_per_image - take_pos)

    # float64 keys: a uniform in [0, 1) plus the class offset keeps all its 53 bits
    u = torch.rand(labels.shape, generator=generator, dtype=torch.float64, device=labels.device)
    cls = torch.where(pos, 0.0, torch.where(neg, 1.0, 3.0)).to(torch.float64)
    order = torch.sort(cls + u, dim=1, stable=True).indices
    position = torch.empty_like(order)
    position.scatter_(
        1, order, torch.arange(labels.shape[1], device=labels.device).expand_as(order).contiguous()
    )
    keep_pos = pos & (position < take_pos)
    keep_neg = neg & (position - num_pos < take_neg)
    out = torch.full_like(labels, -1)
    out = torch.where(keep_pos, torch.ones_like(labels), out)
    return torch.where(keep_neg, torch.zeros_like(labels), out)
