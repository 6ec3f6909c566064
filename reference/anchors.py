"""Anchors: base anchors per (ratio, size), tiled over a feature map, row-major (y, x, anchor).

Mirrors ``csrc/cpu/grid_anchors_kernel.cpp``: the kernel receives the base anchors and writes
``base[a] + shift(i, j)`` at row ``(i * W + j) * A + a``.
"""

import math
import numbers

import numpy as np


def _pair(value, name):
    if np.isscalar(value):
        return float(value), float(value)
    pair = tuple(float(v) for v in value)
    if len(pair) != 2:
        raise ValueError(f"{name} must be a number or a pair (y, x), got {value!r}")
    return pair


def base_anchor_rows(sizes=(128, 256, 512), aspect_ratios=(0.5, 1.0, 2.0)):
    """The base anchors as a list of ``[x1, y1, x2, y2]`` rows of Python floats, centred on 0.

    ratio = h / w: ``h = s * sqrt(r)``, ``w = s / sqrt(r)``; ratio-major (for r in ratios, for s
    in sizes). Plain Python so that ``frcnn_fast.base_anchors`` builds its tensor from the very
    same numbers, under ``torch.compile`` too.
    """
    for name, values in (("sizes", sizes), ("aspect_ratios", aspect_ratios)):
        # isinstance, not np.isscalar: torch.compile traces this (base_anchors calls it)
        if isinstance(values, (numbers.Number, str, bytes, np.generic)):
            raise TypeError(f"{name} must be a sequence of numbers, got {values!r}")
        for v in values:
            if not (v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be positive and finite, got {v}")
    rows = []
    for r in aspect_ratios:
        for s in sizes:
            h = s * math.sqrt(r)
            w = s / math.sqrt(r)
            rows.append([-0.5 * w, -0.5 * h, 0.5 * w, 0.5 * h])
    return rows


def base_anchors(sizes=(128, 256, 512), aspect_ratios=(0.5, 1.0, 2.0), rounded=False):
    """``[len(ratios) * len(sizes), 4]`` anchors centred on 0 (see ``base_anchor_rows``).

    ``rounded=True`` rounds half-to-even (as ``torch.round`` does), which with ``offset=0``
    reproduces torchvision's ``AnchorGenerator``.
    """
    anchors = np.asarray(base_anchor_rows(sizes, aspect_ratios), dtype=np.float64).reshape(-1, 4)
    return np.round(anchors) if rounded else anchors


def generate_anchors(
    feature_size,
    stride,
    sizes=(128, 256, 512),
    aspect_ratios=(0.5, 1.0, 2.0),
    offset=0.5,
    *,
    rounded=False,
):
    """All anchors of one feature map, ``[H * W * A, 4]``.

    The anchor centre of cell ``(i, j)`` is ``((j + offset) * stride_x, (i + offset) * stride_y)``.
    """
    height, width = (int(v) for v in feature_size)
    if height < 0 or width < 0:
        raise ValueError(f"feature_size must be non-negative, got {tuple(feature_size)}")
    stride_y, stride_x = _pair(stride, "stride")
    base = base_anchors(sizes, aspect_ratios, rounded)
    num_base = base.shape[0]
    out = np.empty((height * width * num_base, 4), dtype=np.float64)
    for i in range(height):
        cy = (i + offset) * stride_y
        for j in range(width):
            cx = (j + offset) * stride_x
            row = (i * width + j) * num_base
            out[row : row + num_base] = base + np.array([cx, cy, cx, cy])
    return out


def generate_anchors_multilevel(
    feature_sizes, strides, sizes, aspect_ratios, offset=0.5, *, rounded=False
):
    """FPN anchors: one level per feature map, concatenated in level order.

    ``sizes`` has one tuple per level; ``aspect_ratios`` one tuple per level, or a single
    tuple of numbers shared by every level.
    """
    num_levels = len(feature_sizes)
    if np.isscalar(aspect_ratios[0]):
        aspect_ratios = [aspect_ratios] * num_levels
    if not (len(strides) == len(sizes) == len(aspect_ratios) == num_levels):
        raise ValueError(
            "feature_sizes, strides, sizes and aspect_ratios must have one entry per level, got "
            f"{num_levels}, {len(strides)}, {len(sizes)}, {len(aspect_ratios)}"
        )
    levels = [
        generate_anchors(f, st, s, r, offset, rounded=rounded)
        for f, st, s, r in zip(feature_sizes, strides, sizes, aspect_ratios)
    ]
    return np.concatenate(levels, axis=0) if levels else np.zeros((0, 4))


def anchors_inside(anchors, image_size, allowed_border=0.0):
    """Bool mask of the anchors lying fully inside an image of ``(height, width)``."""
    height, width = image_size
    a = np.asarray(anchors, dtype=np.float64)
    b = allowed_border
    return (a[:, 0] >= -b) & (a[:, 1] >= -b) & (a[:, 2] <= width + b) & (a[:, 3] <= height + b)
