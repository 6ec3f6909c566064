"""The Faster R-CNN box parameterisation (dx, dy, dw, dh)."""

import math
import warnings

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


class _Required:
    """Default of an argument that may still arrive under its old keyword; a fixed repr keeps
    the signature the same in every process (docs/API.md is checked against it)."""

    def __repr__(self):
        return "<required>"


_UNSET = _Required()


def encode_boxes(
    anchors: Tensor = _UNSET,
    gt_boxes: Tensor = _UNSET,
    weights=(1.0, 1.0, 1.0, 1.0),
    **legacy,
) -> Tensor:
    """Deltas ``[..., 4]`` that move ``anchors`` (anchors or proposals) onto ``gt_boxes``.

    ``dx = wx*(gcx - acx)/aw``, ``dy = wy*(gcy - acy)/ah``, ``dw = ww*log(gw/aw)``,
    ``dh = wh*log(gh/ah)``. RPN uses weights (1, 1, 1, 1), the box head (10, 10, 5, 5).

    Anchors come first, as before; the keywords were ``reference_boxes`` (the anchors) and
    ``target_boxes`` and are now refused with an explanation, because torchvision's
    ``BoxCoder.encode_single(reference_boxes, proposals)`` and ``_utils.encode_boxes`` use
    ``reference_boxes`` for the ground truth: a call ported with keywords would silently get
    the deltas of the swapped pair.
    """
    if legacy:
        unknown = set(legacy) - {"reference_boxes", "target_boxes"}
        if unknown:
            raise TypeError(f"encode_boxes() got unexpected keyword arguments {sorted(unknown)}")
        raise TypeError(
            "encode_boxes(): the keywords reference_boxes= and target_boxes= were renamed to "
            "anchors= and gt_boxes= (ours meant reference_boxes = anchors, torchvision's "
            "encode_single(reference_boxes, proposals) means reference_boxes = ground truth). "
            "Call encode_boxes(anchors=..., gt_boxes=...)."
        )
    if anchors is _UNSET or gt_boxes is _UNSET:
        raise TypeError("encode_boxes() needs anchors and gt_boxes")
    check_tensor(anchors, "anchors")
    check_tensor(gt_boxes, "gt_boxes")
    return torch.ops.frcnn_fast.encode_boxes.default(anchors, gt_boxes, _weights(weights))


def decode_boxes(
    deltas: Tensor,
    anchors: Tensor = _UNSET,
    weights=(1.0, 1.0, 1.0, 1.0),
    clamp: float = DEFAULT_DECODE_CLAMP,
    **legacy,
) -> Tensor:
    """Boxes ``[N, 4*K]`` from ``deltas[N, 4*K]`` applied to ``anchors[N, 4]`` (anchors or
    proposals). K boxes per anchor (e.g. one per class) share it; dw and dh are capped at
    ``clamp`` before ``exp``. The old keyword ``reference_boxes=`` still works, with a
    DeprecationWarning."""
    if legacy:
        unknown = set(legacy) - {"reference_boxes"}
        if unknown:
            raise TypeError(f"decode_boxes() got unexpected keyword arguments {sorted(unknown)}")
        if anchors is not _UNSET:
            raise TypeError("decode_boxes() got both anchors and reference_boxes")
        warnings.warn(
            "decode_boxes(reference_boxes=...) is deprecated: the argument is now anchors=",
            DeprecationWarning,
            stacklevel=2,
        )
        anchors = legacy["reference_boxes"]
    if anchors is _UNSET:
        raise TypeError("decode_boxes() needs anchors")
    check_tensor(deltas, "deltas")
    check_tensor(anchors, "anchors")
    check_number(clamp, "clamp")
    return torch.ops.frcnn_fast.decode_boxes.default(
        deltas, anchors, _weights(weights), float(clamp)
    )
