"""What RoI pooling and RoIAlign share in Python: argument checks and the RoI format."""

import math
from typing import List, Optional, Tuple, Union

import torch
from torch import Tensor

from .._checks import check_pair, check_same_device, check_tensor


class BoxesShapeError(ValueError, AssertionError):
    """Boxes of the wrong shape for a RoI op. A ValueError, and an AssertionError as well
    because torchvision reports this case with ``torch._assert``."""


class BoxesTypeError(TypeError, AssertionError):
    """Boxes that are neither a tensor nor a list of tensors (an AssertionError too, as above)."""


def convert_boxes_to_roi_format(boxes: Union[Tensor, List[Tensor]]) -> Tensor:
    """``[K, 5]`` rows ``(batch_index, x1, y1, x2, y2)`` from a ``[K, 5]`` tensor (returned as is)
    or a list of per-image ``[Ki, 4]`` tensors (image i gets batch index i)."""
    if isinstance(boxes, Tensor):
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise BoxesShapeError(
                f"boxes given as one tensor must have shape [K, 5] (batch_index, x1, y1, x2, y2), "
                f"got {list(boxes.shape)}"
            )
        return boxes
    if not isinstance(boxes, (list, tuple)):
        raise BoxesTypeError(
            f"boxes must be a Tensor[K, 5] or a list of Tensor[Ki, 4], got {type(boxes).__name__}"
        )
    if len(boxes) == 0:
        raise ValueError(
            "boxes must be a Tensor[K, 5] or a non-empty list of Tensor[Ki, 4], got an empty list"
        )
    for i, b in enumerate(boxes):
        check_tensor(b, f"boxes[{i}]")
        if b.dim() != 2 or b.shape[1] != 4:
            raise BoxesShapeError(f"boxes[{i}] must have shape [Ki, 4], got {list(b.shape)}")
        if b.dtype != boxes[0].dtype or b.device != boxes[0].device:
            raise ValueError(
                f"boxes[{i}] must have the dtype and device of boxes[0] ({boxes[0].dtype}, {boxes[0].device}), "
                f"got {b.dtype}, {b.device}"
            )
    return rois_from_list(list(boxes))


def rois_from_list(boxes: List[Tensor]) -> Tensor:
    """The ``[K, 5]`` form of per-image ``[Ki, 4]`` boxes (TorchScript-compilable)."""
    coords = torch.cat(boxes, dim=0)
    index = torch.cat(
        [
            torch.full((b.shape[0], 1), i, dtype=coords.dtype, device=coords.device)
            for i, b in enumerate(boxes)
        ],
        dim=0,
    )
    return torch.cat([index, coords], dim=1)


def rois_for(input: Tensor, boxes: Union[Tensor, List[Tensor]]) -> Tensor:
    """The ``[K, 5]`` RoIs of ``boxes``, checked against ``input`` (Python callers: a clear
    error for a list of more images than ``input`` holds, or for mixed devices)."""
    if not torch.jit.is_scripting():
        rois = convert_boxes_to_roi_format(boxes)
        if isinstance(boxes, (list, tuple)) and len(boxes) > input.shape[0]:
            raise ValueError(
                f"boxes is a list of {len(boxes)} per-image box tensors but input holds "
                f"{input.shape[0]} images (input.shape[0])"
            )
        check_same_device(input, "input", rois, "boxes")
        return rois
    if isinstance(boxes, Tensor):
        torch._assert(boxes.size(1) == 5, "boxes must have shape [K, 5]")
        return boxes
    return rois_from_list(boxes)


def output_size_pair(output_size: List[int]) -> Tuple[int, int]:
    """TorchScript path: ``BroadcastingList2[int]`` arrives as a list of two."""
    return output_size[0], output_size[1]


def check_output_size(output_size):
    h, w = check_pair(output_size, "output_size")
    for v in (h, w):
        if isinstance(v, float) and not float(v).is_integer():
            raise ValueError(f"output_size must hold integers, got {output_size}")
    h, w = int(h), int(w)
    if h <= 0 or w <= 0:
        raise ValueError(f"output_size must be positive, got {output_size}")
    return h, w


def check_scale(spatial_scale, name="spatial_scale"):
    if isinstance(spatial_scale, bool) or not isinstance(spatial_scale, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(spatial_scale).__name__}")
    if not math.isfinite(spatial_scale) or spatial_scale <= 0:
        raise ValueError(f"{name} must be positive and finite, got {spatial_scale}")
    return float(spatial_scale)


def channels_last(x: Tensor) -> bool:
    """Whether the kernels take their NHWC path for ``x`` (``use_channels_last`` in
    csrc/common/roi_layout.h): a map that is both contiguous and channels-last (C == 1, or
    H == W == 1) stays NCHW."""
    return (not x.is_contiguous()) and x.is_contiguous(memory_format=torch.channels_last)


def format_of(nhwc: bool) -> torch.memory_format:
    """The memory format of the kernels' outputs and gradients (the C++ ``format_of``)."""
    return torch.channels_last if nhwc else torch.contiguous_format


def resolve_deterministic(deterministic: Optional[bool]) -> bool:
    if deterministic is None:
        return torch.are_deterministic_algorithms_enabled()
    if not isinstance(deterministic, bool):
        raise TypeError(f"deterministic must be a bool or None, got {type(deterministic).__name__}")
    return deterministic


def no_double_backward(op_name: str, public_name: str):
    """Register an autograd formula on a backward op that refuses a second derivative (instead of
    PyTorch's warning and a silently missing gradient)."""

    def setup_context(ctx, inputs, output):
        pass

    def backward(ctx, *grads):
        raise RuntimeError(
            f"{public_name}: double backward (a gradient of its gradient) is not supported"
        )

    torch.library.register_autograd(op_name, backward, setup_context=setup_context)


def check_boxes_per_image(
    boxes: List[Tensor], image_shapes: List[Tuple[int, int]], num_images: int, owner: str = ""
) -> None:
    """A multi-scale pooler's per-image inputs: one box tensor per image size, and no more of
    them than the feature maps hold images. ``owner`` prefixes the messages."""
    if len(boxes) != len(image_shapes):
        raise ValueError(
            f"{owner}boxes holds {len(boxes)} per-image box tensors but image_shapes holds "
            f"{len(image_shapes)} image sizes; they must match (one box tensor per image)"
        )
    if len(boxes) > num_images:
        raise ValueError(
            f"{owner}boxes holds {len(boxes)} per-image box tensors but the feature maps hold "
            f"{num_images} images"
        )
