"""The Faster R-CNN box parameterisation (dx, dy, dw, dh)."""

import math

import torch
from torch import Tensor

from .._checks import check_number, check_tensor

# An object can grow at most 1000/16 times from its reference box in one decode step.
DEFAULT_DECODE_CLAMP = math.log(1000.0 / 16)


def _weights(weights):
    if not isinstance(weights, (tuple, list)):
        raise TypeError(f"weights must be a tuple of 4 numbers, got {type(weights).__name__}")
    if len(weights) != 4:
        raise ValueError(f"weights must have 4 entries (wx, wy, ww, wh), got {len(weights)}")
    return [float(check_number(w, "weights")) for w in weights]


def encode_boxes(
    reference_boxes: Tensor, target_boxes: Tensor, weights=(1.0, 1.0, 1.0, 1.0)
) -> Tensor:
    """Deltas ``[..., 4]`` that move ``reference_boxes`` (anchors, proposals) onto ``target_boxes``.

    ``dx = wx*(tcx - rcx)/rw``, ``dy = wy*(tcy - rcy)/rh``, ``dw = ww*log(tw/rw)``,
    ``dh = wh*log(th/rh)``. RPN uses weights (1, 1, 1, 1), the box head (10, 10, 5, 5).
    """
    check_tensor(reference_boxes, "reference_boxes")
    check_tensor(target_boxes, "target_boxes")
    return torch.ops.frcnn_fast.encode_boxes.default(
        reference_boxes, target_boxes, _weights(weights)
    )


def decode_boxes(
    deltas: Tensor,
    reference_boxes: Tensor,
    weights=(1.0, 1.0, 1.0, 1.0),
    clamp: float = DEFAULT_DECODE_CLAMP,
) -> Tensor:
    """Boxes ``[N, 4*K]`` from ``deltas[N, 4*K]`` applied to ``reference_boxes[N, 4]``.

    K boxes per reference (e.g. one per class) share it; dw and dh are capped at ``clamp``
    before ``exp``.
    """
    check_tensor(deltas, "deltas")
    check_tensor(reference_boxes, "reference_boxes")
    check_number(clamp, "clamp")
    return torch.ops.frcnn_fast.decode_boxes.default(
        deltas, reference_boxes, _weights(weights), float(clamp)
    )
