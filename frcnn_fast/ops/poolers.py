"""Multi-level (FPN) RoIAlign, drop-in for ``torchvision.ops.MultiScaleRoIAlign``."""

import math
from typing import Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from ._roi import check_boxes_per_image, convert_boxes_to_roi_format, rois_from_list
from .roi_align import multilevel_roi_align


def _infer_scale(feature: Tensor, original_size: List[int]) -> float:
    """``2 ** round(log2(feature / image))``, which must agree for height and width."""
    size = feature.shape[-2:]
    scales = [
        2.0 ** float(round(math.log2(float(size[0]) / float(original_size[0])))),
        2.0 ** float(round(math.log2(float(size[1]) / float(original_size[1])))),
    ]
    if scales[0] != scales[1]:
        raise ValueError(
            f"feature map {list(feature.shape[-2:])} has different height and width scales "
            f"{scales} for image size {original_size}"
        )
    return scales[0]


def fpn_levels(
    boxes: List[Tensor],
    k_min: int,
    k_max: int,
    canonical_scale: float = 224,
    canonical_level: int = 4,
    eps: float = 1e-6,
) -> Tensor:
    """FPN level index (0 = level ``k_min``) of every box of every image (Lin et al., eq. 1):
    ``floor(k0 + log2(sqrt(area) / s0) + eps)`` clamped to ``[k_min, k_max]``. Computed on the
    boxes' device without a host round trip; a NaN box goes to the lowest level."""
    b = torch.cat(boxes, dim=0)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lvl = torch.floor(
        canonical_level
        + torch.log2(torch.sqrt(area) / canonical_scale)
        + torch.tensor(eps, dtype=b.dtype, device=b.device)
    )
    lvl = torch.nan_to_num(lvl, nan=float(k_min)).clamp(min=k_min, max=k_max)
    return lvl.to(torch.int64) - k_min


class MultiScaleRoIAlign(nn.Module):
    """RoIAlign over FPN levels: each box is pooled from the level its size selects.

    Same constructor and call as torchvision's: ``forward(x, boxes, image_shapes)`` with ``x`` a
    dict of feature maps (those named in ``featmap_names`` are used, finest first), ``boxes`` a
    list of per-image ``Tensor[Ki, 4]`` and ``image_shapes`` the ``(height, width)`` of each image.
    Level scales are ``2 ** round(log2(feature / image))`` for the largest image. All levels
    are pooled by one op from the per-RoI level indices, so there is no per-level selection and
    no device-to-host synchronisation.
    """

    def __init__(
        self,
        featmap_names: List[str],
        output_size: Union[int, Tuple[int], List[int]],
        sampling_ratio: int,
        *,
        canonical_scale: int = 224,
        canonical_level: int = 4,
    ):
        super().__init__()
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        self.featmap_names = list(featmap_names)
        self.sampling_ratio = sampling_ratio
        self.output_size = tuple(output_size)
        self.canonical_scale = canonical_scale
        self.canonical_level = canonical_level
        self.scales: Optional[List[float]] = None

    def forward(
        self, x: Dict[str, Tensor], boxes: List[Tensor], image_shapes: List[Tuple[int, int]]
    ) -> Tensor:
        features: List[Tensor] = []
        for k, v in x.items():
            if k in self.featmap_names:
                features.append(v)
        if len(features) == 0:
            raise ValueError(
                f"x holds none of featmap_names {self.featmap_names}: got keys {list(x.keys())}"
            )
        if not torch.jit.is_scripting():
            if not isinstance(boxes, (list, tuple)):
                raise TypeError(
                    f"boxes must be a list of per-image Tensor[Ki, 4], got {type(boxes).__name__}"
                )
        if len(image_shapes) == 0:
            raise ValueError("image_shapes must hold the (height, width) of every image")
        check_boxes_per_image(boxes, image_shapes, features[0].shape[0])
        height = 0
        width = 0
        for s in image_shapes:
            height = max(height, s[0])
            width = max(width, s[1])
        scales = [_infer_scale(f, [height, width]) for f in features]
        self.scales = scales
        if torch.jit.is_scripting():
            rois = rois_from_list(boxes)
        else:
            rois = convert_boxes_to_roi_format(boxes)
        if len(features) == 1:
            levels = torch.zeros(rois.shape[0], dtype=torch.int64, device=rois.device)
        else:
            k_min = int(-math.log2(scales[0]))
            k_max = int(-math.log2(scales[-1]))
            levels = fpn_levels(boxes, k_min, k_max, self.canonical_scale, self.canonical_level)
        return multilevel_roi_align(
            features,
            rois,
            levels,
            [self.output_size[0], self.output_size[1]],
            scales,
            self.sampling_ratio,
            False,
        )

    def extra_repr(self) -> str:
        return f"featmap_names={self.featmap_names}, output_size={self.output_size}, sampling_ratio={self.sampling_ratio}"
