"""Anchors: base anchors per (aspect ratio, size) tiled over feature maps.

Order is row-major (y, then x, then anchor), matching a conv head's
``(N, A*4, H, W) -> (N, H, W, A, 4)`` flattening; FPN levels are concatenated in order.
"""

import numbers

import torch
from torch import Tensor, nn

from .._checks import check_pair, check_tensor
from ..reference.anchors import base_anchor_rows


def base_anchors(
    sizes=(128, 256, 512),
    aspect_ratios=(0.5, 1.0, 2.0),
    rounded=False,
    *,
    dtype=torch.float32,
    device=None,
) -> Tensor:
    """``[len(aspect_ratios) * len(sizes), 4]`` anchors centred on 0, ratio-major.

    ratio = h / w: ``h = size * sqrt(r)``, ``w = size / sqrt(r)``. ``rounded=True`` rounds
    half-to-even as torchvision's ``AnchorGenerator`` does.
    """
    # The reference's own numbers, in float64, rounded once to the requested dtype: every
    # device and dtype starts from the same values.
    rows = base_anchor_rows(sizes, aspect_ratios)
    anchors = torch.tensor(rows, dtype=torch.float64).reshape(-1, 4)
    if rounded:
        anchors = anchors.round()
    return anchors.to(dtype=dtype, device=device)


def _feature_size(feature_size):
    if not isinstance(feature_size, (tuple, list, torch.Size)) or len(feature_size) != 2:
        raise ValueError(f"feature_size must be a (height, width) pair, got {feature_size!r}")
    height, width = feature_size
    if not all(
        isinstance(v, (numbers.Integral, torch.SymInt)) and not isinstance(v, bool)
        for v in (height, width)
    ):
        raise TypeError(f"feature_size must hold integers, got {feature_size!r}")
    if height < 0 or width < 0:
        raise ValueError(f"feature_size must be non-negative, got {tuple(feature_size)}")
    return height, width


def generate_anchors(
    feature_size,
    stride,
    sizes=(128, 256, 512),
    aspect_ratios=(0.5, 1.0, 2.0),
    offset=0.5,
    *,
    rounded=False,
    dtype=torch.float32,
    device=None,
) -> Tensor:
    """All anchors of one feature map, ``[H * W * A, 4]``.

    The anchor centre of cell ``(i, j)`` is ``((j + offset) * stride_x, (i + offset) * stride_y)``;
    ``stride`` is a number or ``(stride_y, stride_x)``. ``offset=0.5`` reproduces the Faster
    R-CNN tutorials; ``offset=0, rounded=True`` reproduces torchvision's ``AnchorGenerator``.
    """
    height, width = _feature_size(feature_size)
    stride_y, stride_x = check_pair(stride, "stride")
    base = base_anchors(sizes, aspect_ratios, rounded, dtype=dtype, device=device)
    return torch.ops.frcnn_fast.grid_anchors.default(
        base, height, width, float(stride_y), float(stride_x), float(offset)
    )


def _per_level(aspect_ratios, num_levels):
    # One tuple of ratios shared by every level, or one tuple per level.
    if len(aspect_ratios) > 0 and isinstance(aspect_ratios[0], numbers.Real):
        return [tuple(aspect_ratios)] * num_levels
    return list(aspect_ratios)


def generate_anchors_multilevel(
    feature_sizes,
    strides,
    sizes,
    aspect_ratios,
    offset=0.5,
    *,
    rounded=False,
    dtype=torch.float32,
    device=None,
) -> Tensor:
    """FPN anchors: one level per feature map, concatenated in level order.

    ``sizes`` holds one tuple per level; ``aspect_ratios`` one tuple per level or a single
    tuple shared by all levels.
    """
    num_levels = len(feature_sizes)
    ratios = _per_level(aspect_ratios, num_levels)
    if not (len(strides) == len(sizes) == len(ratios) == num_levels):
        raise ValueError(
            "feature_sizes, strides, sizes and aspect_ratios must have one entry per level, got "
            f"{num_levels}, {len(strides)}, {len(sizes)}, {len(ratios)}"
        )
    levels = [
        generate_anchors(f, st, s, r, offset, rounded=rounded, dtype=dtype, device=device)
        for f, st, s, r in zip(feature_sizes, strides, sizes, ratios)
    ]
    if not levels:
        return torch.zeros((0, 4), dtype=dtype, device=device)
    return torch.cat(levels, dim=0)


def anchors_inside(anchors: Tensor, image_size, allowed_border: float = 0.0) -> Tensor:
    """Bool mask ``[N]`` of the anchors lying fully inside an image of ``(height, width)``.

    A composite of four comparisons: no kernel of its own.
    """
    check_tensor(anchors, "anchors")
    if anchors.dim() != 2 or anchors.shape[-1] != 4:
        raise ValueError(f"anchors must have shape [N, 4], got {tuple(anchors.shape)}")
    if not anchors.is_floating_point():
        raise ValueError(f"anchors must be a floating-point tensor, got {anchors.dtype}")
    height, width = check_pair(image_size, "image_size")
    b = allowed_border
    # Compared in float64: a bound such as width + border rounded to the anchors' dtype
    # (bfloat16 spacing is 2 px at 300) would let anchors across the border count as inside.
    a = anchors.to(torch.float64)
    return (a[:, 0] >= -b) & (a[:, 1] >= -b) & (a[:, 2] <= width + b) & (a[:, 3] <= height + b)


class AnchorGenerator(nn.Module):
    """Anchors for a batch of images and their (FPN) feature maps.

    Same call as torchvision's ``AnchorGenerator``, **not the same defaults**: ``offset=0.5``
    centres anchors in their cells as the Faster R-CNN tutorials do. In a model trained with
    torchvision's anchors use ``offset=0.0, rounded=True``, which reproduces them exactly.
    ``forward(images, feature_maps)`` returns
    one ``[sum_l H_l * W_l * A_l, 4]`` tensor per image; ``images`` is an image tensor
    ``[N, C, H, W]`` or a torchvision ``ImageList``. A level's stride is
    ``image_size // feature_size`` (torchvision's rule).
    """

    def __init__(
        self,
        sizes=((128, 256, 512),),
        aspect_ratios=((0.5, 1.0, 2.0),),
        offset=0.5,
        rounded=False,
    ):
        super().__init__()
        self.sizes = [tuple(s) for s in sizes]
        self.aspect_ratios = [tuple(r) for r in _per_level(aspect_ratios, len(self.sizes))]
        if len(self.aspect_ratios) != len(self.sizes):
            raise ValueError(
                f"sizes and aspect_ratios must have one entry per level, got {len(self.sizes)} "
                f"and {len(self.aspect_ratios)}"
            )
        self.offset = float(offset)
        self.rounded = bool(rounded)

    def num_anchors_per_location(self):
        return [len(s) * len(r) for s, r in zip(self.sizes, self.aspect_ratios)]

    def forward(self, images, feature_maps):
        tensors = images.tensors if hasattr(images, "tensors") else images
        check_tensor(tensors, "images")
        if tensors.dim() != 4:
            raise ValueError(f"images must have shape [N, C, H, W], got {tuple(tensors.shape)}")
        if len(feature_maps) != len(self.sizes):
            raise ValueError(
                f"feature_maps must have one map per level ({len(self.sizes)}), got {len(feature_maps)}"
            )
        image_h, image_w = tensors.shape[-2:]
        feature_sizes = [tuple(f.shape[-2:]) for f in feature_maps]
        for h, w in feature_sizes:
            if not (0 < h <= image_h and 0 < w <= image_w):
                raise ValueError(
                    f"feature_maps must be non-empty and no larger than the images "
                    f"({image_h}x{image_w}), got a {h}x{w} map"
                )
        strides = [(image_h // h, image_w // w) for h, w in feature_sizes]
        anchors = generate_anchors_multilevel(
            feature_sizes,
            strides,
            self.sizes,
            self.aspect_ratios,
            self.offset,
            rounded=self.rounded,
            dtype=feature_maps[0].dtype,
            device=feature_maps[0].device,
        )
        # One tensor per image, as torchvision returns; each its own storage.
        return [anchors] + [anchors.clone() for _ in range(tensors.shape[0] - 1)]
