"""Argument checks shared by the Faster R-CNN glue (anchor / proposal targets, proposals, losses).

Every error names the argument and says what was wrong. The checks read only shapes and Python
numbers, except the finiteness of ground truths: on CPU a plain check, on CUDA an asynchronous
device assertion (``torch._assert_async``) so that a training step never waits on the host.
"""

import numbers

import torch

from .._checks import check_int, check_number, check_tensor


def check_fraction(value, name):
    check_number(value, name)
    v = float(value)
    if not 0.0 <= v <= 1.0:  # also refuses NaN
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return v


def check_ordered(lo_name, lo, hi_name, hi):
    if lo > hi:
        raise ValueError(f"{lo_name} ({lo}) must be <= {hi_name} ({hi})")


def check_count(value, name):
    check_int(value, name)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)


def check_boxes(value, name, leading=1):
    """A floating tensor of shape ``[N, 4]`` (leading=1) or ``[B, N, 4]`` (leading=2)."""
    check_tensor(value, name)
    if value.dim() != leading + 1 or value.shape[-1] != 4:
        want = "[N, 4]" if leading == 1 else "[B, N, 4]"
        raise ValueError(f"{name} must have shape {want}, got {tuple(value.shape)}")
    if not value.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {value.dtype}")
    return value


def check_finite(value, name):
    if value.numel() == 0:
        return
    if value.device.type == "cpu":
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name} has non-finite coordinates (NaN or inf)")
    else:
        torch._assert_async(torch.isfinite(value).all(), f"{name} has non-finite coordinates")


def check_gt_list(gt_boxes, name="gt_boxes"):
    if not isinstance(gt_boxes, (list, tuple)):
        raise TypeError(f"{name} must be a list of [G_i, 4] tensors, one per image")
    for i, g in enumerate(gt_boxes):
        check_boxes(g, f"{name}[{i}]")
        check_finite(g, f"{name}[{i}]")
    return list(gt_boxes)


def check_image_sizes(image_sizes, batch, batch_name):
    if not isinstance(image_sizes, (list, tuple)):
        raise TypeError("image_sizes must be a list of (height, width) pairs, one per image")
    if len(image_sizes) != batch:
        raise ValueError(
            f"image_sizes has {len(image_sizes)} entries but {batch_name} has {batch} images"
        )
    out = []
    for i, s in enumerate(image_sizes):
        if not isinstance(s, (tuple, list, torch.Size)) or len(s) != 2:
            raise ValueError(f"image_sizes[{i}] must be a (height, width) pair, got {s!r}")
        h, w = s
        for v in (h, w):
            if isinstance(v, bool) or not isinstance(v, (numbers.Real, torch.SymInt)):
                raise TypeError(f"image_sizes[{i}] must hold numbers, got {s!r}")
            if v < 0:
                raise ValueError(f"image_sizes[{i}] must be non-negative, got {tuple(s)}")
        out.append((h, w))
    return out


def pad_boxes(boxes, width=None):
    """Stack a list of ``[N_i, 4]`` tensors into ``[B, max(N_i, 1), 4]`` (zero rows as padding)
    and their counts; only shapes are read, so nothing waits on the device."""
    n = max([b.shape[0] for b in boxes] + [1]) if width is None else width
    out = boxes[0].new_zeros((len(boxes), n, 4))
    for i, b in enumerate(boxes):
        out[i, : b.shape[0]] = b
    return out
