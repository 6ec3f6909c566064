"""``forward`` of torchvision's own ``MultiScaleRoIAlign`` on our multi-level kernel (installed by
:func:`frcnn_fast.patch_torchvision`; imports torchvision, so only the patch imports it).

It keeps torchvision's state exactly: ``scales`` and ``map_levels`` are set up by torchvision's
``_setup_scales`` on the first call and reused, and the level of every box comes from
torchvision's ``LevelMapper``; only the pooling differs: every level in one op instead of one
``roi_align`` per level.
"""

from typing import Dict, List, Optional, Tuple

import torch
import torch.fx
from torch import Tensor
from torchvision.ops.poolers import LevelMapper, _filter_input, _setup_scales

from .ops._roi import check_boxes_per_image, rois_from_list

# Leaves of torch.fx traces, as in torchvision (they read tensor shapes).
torch.fx.wrap("_filter_input")
torch.fx.wrap("_setup_scales")


@torch.fx.wrap
def multiscale_roi_align(
    x_filtered: List[Tensor],
    boxes: List[Tensor],
    image_shapes: List[Tuple[int, int]],
    output_size: List[int],
    sampling_ratio: int,
    scales: Optional[List[float]],
    mapper: Optional[LevelMapper],
) -> Tensor:
    if scales is None or mapper is None:
        raise ValueError("MultiScaleRoIAlign: scales and the level mapper must be set up")
    check_boxes_per_image(boxes, image_shapes, x_filtered[0].shape[0], "MultiScaleRoIAlign: ")
    rois = rois_from_list(boxes)
    if len(x_filtered) == 1:
        levels = torch.zeros(rois.shape[0], dtype=torch.int64, device=rois.device)
    else:
        levels = mapper(boxes)
    deterministic = False
    if not torch.jit.is_scripting():
        deterministic = torch.are_deterministic_algorithms_enabled()
    return torch.ops.frcnn_fast.multilevel_roi_align(
        x_filtered,
        rois,
        levels,
        scales,
        output_size[0],
        output_size[1],
        sampling_ratio,
        False,
        deterministic,
    )


def multiscale_forward(
    self,
    x: Dict[str, Tensor],
    boxes: List[Tensor],
    image_shapes: List[Tuple[int, int]],
) -> Tensor:
    x_filtered = _filter_input(x, self.featmap_names)
    if self.scales is None or self.map_levels is None:
        self.scales, self.map_levels = _setup_scales(
            x_filtered, image_shapes, self.canonical_scale, self.canonical_level
        )
    return multiscale_roi_align(
        x_filtered,
        boxes,
        image_shapes,
        self.output_size,
        self.sampling_ratio,
        self.scales,
        self.map_levels,
    )
