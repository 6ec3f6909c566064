"""Box geometry ops. Boxes are ``(x1, y1, x2, y2)``, width ``x2 - x1`` (no +1).

``box_iou``, ``box_area``, ``box_convert``, ``clip_boxes`` (torchvision's
``clip_boxes_to_image``) and ``remove_small_boxes`` take torchvision 0.28's arguments and accept
what it accepts (every box format, leading batch dimensions, integer and mixed float dtypes) and
compile with ``torch.jit.script``. Argument checks that only Python can do sit behind
``torch.jit.is_scripting()``; the C++ ops check shapes, dtypes and devices for every caller.
"""

from typing import List, Tuple

import torch
from torch import Tensor

from .._checks import check_number, check_pair, check_same_device, check_tensor

BOX_FORMATS = ("xyxy", "yxyx", "xywh", "cxcywh")
# The formats of torchvision's box_iou / box_area, and the rotated ones (angle in degrees,
# counter-clockwise) that box_convert and box_iou delegate to torchvision.
AXIS_ALIGNED_FORMATS = ("xyxy", "xywh", "cxcywh")
ROTATED_FORMATS = ("cxcywhr", "xywhr", "xyxyxyxy")


def _kernel_dtype(t: Tensor) -> Tensor:
    """The dtype our kernels compute in: float32/float64 as given; float16/bfloat16 in float32
    (torchvision upcasts them too); integers in float64, which holds their products exactly."""
    if t.dtype == torch.float32 or t.dtype == torch.float64:
        return t
    if t.is_floating_point():
        return t.float()
    return t.double()


def _int_result_dtype(dtype: torch.dtype) -> torch.dtype:
    """torchvision computes integer box areas in int32 (int64 stays int64)."""
    if dtype == torch.int64:
        return torch.int64
    return torch.int32


def _to_xyxy(boxes: Tensor, fmt: str) -> Tensor:
    if fmt == "xyxy":
        return boxes
    return torch.ops.frcnn_fast.box_convert(boxes, fmt, "xyxy")


def _broadcast_leading(a: List[int], b: List[int]) -> List[int]:
    n = max(len(a), len(b))
    a = [1] * (n - len(a)) + a
    b = [1] * (n - len(b)) + b
    out: List[int] = []
    for i in range(n):
        if a[i] != b[i] and a[i] != 1 and b[i] != 1:
            raise ValueError(
                f"boxes1 and boxes2 have leading dimensions that do not broadcast: {a} and {b}"
            )
        out.append(max(a[i], b[i]) if a[i] != 0 and b[i] != 0 else 0)
    return out


def _pairwise_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU of xyxy ``[..., N, 4] x [..., M, 4] -> [..., N, M]`` (leading dims broadcast)."""
    if boxes1.dim() == 2 and boxes2.dim() == 2:
        return torch.ops.frcnn_fast.box_iou(boxes1, boxes2)
    if boxes1.dim() < 2 or boxes2.dim() < 2:
        raise ValueError(
            f"boxes1 and boxes2 must have shape [..., N, 4] and [..., M, 4], got "
            f"{list(boxes1.shape)} and {list(boxes2.shape)}"
        )
    n = boxes1.shape[-2]
    m = boxes2.shape[-2]
    lead = _broadcast_leading(list(boxes1.shape[:-2]), list(boxes2.shape[:-2]))
    b1 = boxes1.expand(lead + [n, 4]).reshape(-1, n, 4)
    b2 = boxes2.expand(lead + [m, 4]).reshape(-1, m, 4)
    if b1.shape[0] == 0:
        return boxes1.new_empty(lead + [n, m])
    out = [torch.ops.frcnn_fast.box_iou(b1[i], b2[i]) for i in range(b1.shape[0])]
    return torch.stack(out).reshape(lead + [n, m])


def box_area(boxes: Tensor, fmt: str = "xyxy") -> Tensor:
    """Area of ``boxes[..., 4]`` in ``fmt`` (``xyxy``, ``xywh`` or ``cxcywh``); inverted boxes
    have area 0. float16/bfloat16 give float32, integers int32 (int64: int64), as torchvision."""
    if not torch.jit.is_scripting():
        check_tensor(boxes, "boxes")
    if fmt != "xyxy" and fmt != "xywh" and fmt != "cxcywh":
        raise ValueError(f"box_area: fmt must be one of 'xyxy', 'xywh', 'cxcywh', got '{fmt}'")
    b = _kernel_dtype(boxes)
    area = torch.ops.frcnn_fast.box_area(_to_xyxy(b, fmt))
    if not boxes.is_floating_point():
        area = area.to(_int_result_dtype(boxes.dtype))
    return area


def box_iou(boxes1: Tensor, boxes2: Tensor, fmt: str = "xyxy") -> Tensor:
    """Pairwise IoU ``[..., N, K] x [..., M, K] -> [..., N, M]``, 0 where the union is empty
    (never NaN). ``fmt``: ``xyxy``, ``xywh``, ``cxcywh`` (K = 4, our kernel) or the rotated
    ``cxcywhr``, ``xywhr`` (K = 5) and ``xyxyxyxy`` (K = 8), which torchvision's
    ``box_iou_rotated`` computes. Leading dimensions broadcast. Integer boxes and float16 give
    float32; mixed float dtypes are promoted. Drop-in for ``torchvision.ops.box_iou``."""
    if not torch.jit.is_scripting():
        check_tensor(boxes1, "boxes1")
        check_tensor(boxes2, "boxes2")
        check_same_device(boxes1, "boxes1", boxes2, "boxes2")
        if fmt in ROTATED_FORMATS:
            return _rotated_iou(boxes1, boxes2, fmt)
    if fmt != "xyxy" and fmt != "xywh" and fmt != "cxcywh":
        raise ValueError(
            "box_iou: fmt must be one of 'xyxy', 'xywh', 'cxcywh' or (not in TorchScript) "
            f"'cxcywhr', 'xywhr', 'xyxyxyxy', got '{fmt}'"
        )
    b1 = _kernel_dtype(boxes1)
    b2 = _kernel_dtype(boxes2)
    if b1.dtype != b2.dtype:
        common = torch.promote_types(b1.dtype, b2.dtype)
        b1 = b1.to(common)
        b2 = b2.to(common)
    iou = _pairwise_iou(_to_xyxy(b1, fmt), _to_xyxy(b2, fmt))
    if not boxes1.is_floating_point() and not boxes2.is_floating_point():
        iou = iou.float()  # torchvision's int / int
    return iou


@torch.jit.unused
def _rotated_iou(boxes1: Tensor, boxes2: Tensor, fmt: str) -> Tensor:
    # Rotated IoU is torchvision's kernel: we have none of our own (polygon clipping).
    from ..torchvision_patch import torchvision_original

    return torchvision_original("box_iou")(boxes1, boxes2, fmt)


def box_iou_aligned(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Elementwise IoU of ``boxes1[..., 4]`` and ``boxes2[..., 4]`` (same shape) -> ``[...]``."""
    if not torch.jit.is_scripting():
        check_tensor(boxes1, "boxes1")
        check_tensor(boxes2, "boxes2")
    return torch.ops.frcnn_fast.box_iou_aligned(boxes1, boxes2)


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert ``boxes[..., 4]`` between ``xyxy``, ``yxyx``, ``xywh`` and ``cxcywh``; the
    rotated formats ``xywhr``, ``cxcywhr`` and ``xyxyxyxy`` go to torchvision's conversion.
    An unknown format raises ValueError (as torchvision)."""
    if not torch.jit.is_scripting():
        check_tensor(boxes, "boxes")
        for name, fmt in (("in_fmt", in_fmt), ("out_fmt", out_fmt)):
            if not isinstance(fmt, str):
                raise TypeError(
                    f"{name} must be a str, one of {BOX_FORMATS}, got {type(fmt).__name__}"
                )
        if in_fmt in ROTATED_FORMATS or out_fmt in ROTATED_FORMATS:
            return _rotated_convert(boxes, in_fmt, out_fmt)
    formats = ["xyxy", "yxyx", "xywh", "cxcywh"]
    if in_fmt not in formats or out_fmt not in formats:
        raise ValueError(
            "box_convert: in_fmt and out_fmt must be 'xyxy', 'yxyx', 'xywh', 'cxcywh' or (not in "
            f"TorchScript) 'xywhr', 'cxcywhr', 'xyxyxyxy', got '{in_fmt}' and '{out_fmt}'"
        )
    if in_fmt == out_fmt:
        return boxes.clone()
    if not boxes.is_floating_point():
        return torch.ops.frcnn_fast.box_convert(boxes.double(), in_fmt, out_fmt).to(boxes.dtype)
    return torch.ops.frcnn_fast.box_convert(boxes, in_fmt, out_fmt)


@torch.jit.unused
def _rotated_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    from ..torchvision_patch import torchvision_original

    return torchvision_original("box_convert")(boxes, in_fmt, out_fmt)


def clip_boxes(boxes: Tensor, size: Tuple[int, int]) -> Tensor:
    """Clamp x to ``[0, width]`` and y to ``[0, height]``; ``size`` is ``(height, width)``.
    Drop-in for ``torchvision.ops.clip_boxes_to_image`` (integer boxes are clamped as is)."""
    if not torch.jit.is_scripting():
        check_tensor(boxes, "boxes")
        if not isinstance(size, (tuple, list, torch.Size)):
            raise TypeError(f"size must be a (height, width) pair, got {type(size).__name__}")
        check_pair(size, "size")
    height = size[0]
    width = size[1]
    if not boxes.is_floating_point():
        # No kernel for integers: clamping them in place of a float round trip keeps int64 exact.
        x = boxes[..., 0::2].clamp(min=0, max=width)
        y = boxes[..., 1::2].clamp(min=0, max=height)
        return torch.stack((x, y), dim=boxes.dim()).reshape(boxes.shape)
    return torch.ops.frcnn_fast.clip_boxes(boxes, float(height), float(width))


def clip_boxes_to_image(boxes: Tensor, size: Tuple[int, int]) -> Tensor:
    """torchvision's name for :func:`clip_boxes`."""
    return clip_boxes(boxes, size)


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """int64 indices, ascending, of the boxes with width >= min_size and height >= min_size.
    Integer boxes are compared exactly (in float64)."""
    if not torch.jit.is_scripting():
        check_tensor(boxes, "boxes")
        check_number(min_size, "min_size")
    b = boxes
    if not b.is_floating_point():
        b = b.double()
    return torch.ops.frcnn_fast.remove_small_boxes(b, float(min_size))
