"""RoIAlign (Mask R-CNN), drop-in for ``torchvision.ops.roi_align`` / ``RoIAlign``."""

from typing import List, Optional, Union

import torch
from torch import Tensor, nn
from torch.jit.annotations import BroadcastingList2

from .._checks import check_tensor
from ._roi import (
    channels_last,
    check_output_size,
    check_scale,
    convert_boxes_to_roi_format,
    no_double_backward,
    output_size_pair,
    resolve_deterministic,
    rois_for,
)


def _check_sampling_ratio(sampling_ratio):
    if isinstance(sampling_ratio, bool) or not isinstance(sampling_ratio, int):
        raise TypeError(f"sampling_ratio must be an int, got {type(sampling_ratio).__name__}")
    return sampling_ratio


@torch.fx.wrap
def roi_align(
    input: Tensor,
    boxes: Union[Tensor, List[Tensor]],
    output_size: BroadcastingList2[int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
    deterministic: Optional[bool] = None,
) -> Tensor:
    """Average of bilinear samples over each of ``output_size`` bins of every RoI:
    ``[N, C, H, W] -> [K, C, PH, PW]``.

    ``boxes``: ``Tensor[K, 5]`` ``(batch_index, x1, y1, x2, y2)`` or a list of per-image
    ``Tensor[Ki, 4]``. ``sampling_ratio <= 0``: ``ceil(roi_size / output_size)`` samples per bin
    and axis. ``aligned=True`` shifts the box by -0.5 cell (pixel-centre convention).
    Differentiable in ``input``; ``deterministic`` as in :func:`frcnn_fast.roi_pool`.
    A quantized ``input`` (one image, quantized ``boxes``) is pooled in float and requantized
    with its scale and zero point, as torchvision. Leaf of ``torch.fx`` traces; compiles with
    ``torch.jit.script``.
    """
    if torch.jit.is_scripting():
        ph, pw = output_size_pair(output_size)
        det = False if deterministic is None else deterministic
        return torch.ops.frcnn_fast.roi_align(
            input, rois_for(input, boxes), spatial_scale, ph, pw, sampling_ratio, aligned, det
        )
    check_tensor(input, "input")
    if input.is_quantized:
        return _quantized_roi_align(
            input, boxes, output_size, spatial_scale, sampling_ratio, aligned
        )
    rois = rois_for(input, boxes)
    if rois.dtype != input.dtype and rois.is_floating_point() and input.is_floating_point():
        # Mixed dtypes (torchvision's autocast case): pooled in the wider one, returned in
        # input's dtype.
        common = torch.promote_types(input.dtype, rois.dtype)
        return roi_align(
            input.to(common),
            rois.to(common),
            output_size,
            spatial_scale,
            sampling_ratio,
            aligned,
            deterministic,
        ).to(input.dtype)
    ph, pw = check_output_size(output_size)
    scale = check_scale(spatial_scale)
    det = resolve_deterministic(deterministic)
    return torch.ops.frcnn_fast.roi_align.default(
        input, rois, scale, ph, pw, _check_sampling_ratio(sampling_ratio), bool(aligned), det
    )


def _quantized_roi_align(input, boxes, output_size, spatial_scale, sampling_ratio, aligned):
    if input.shape[0] != 1:
        raise RuntimeError(
            "roi_align of a quantized input: Only one image per batch is allowed "
            f"(input.shape[0] must be 1, got {input.shape[0]})"
        )
    rois = boxes if isinstance(boxes, Tensor) else convert_boxes_to_roi_format(boxes)
    if not rois.is_quantized:
        raise ValueError("roi_align: if input is quantized, boxes must be quantized too")
    out = roi_align(
        input.dequantize(),
        rois.dequantize(),
        output_size,
        spatial_scale,
        sampling_ratio,
        aligned,
    )
    return torch.quantize_per_tensor(out, input.q_scale(), input.q_zero_point(), input.dtype)


def _setup_context(ctx, inputs, output):
    input, rois, scale, ph, pw, sampling_ratio, aligned, *rest = inputs
    det = rest[0] if rest else False
    ctx.save_for_backward(rois)
    ctx.args = (scale, ph, pw, *input.shape, sampling_ratio, aligned, channels_last(input), det)


def _backward(ctx, grad):
    (rois,) = ctx.saved_tensors
    grad_input = torch.ops.frcnn_fast._roi_align_backward.default(grad, rois, *ctx.args)
    return grad_input, None, None, None, None, None, None, None


torch.library.register_autograd("frcnn_fast::roi_align", _backward, setup_context=_setup_context)
no_double_backward("frcnn_fast::_roi_align_backward", "roi_align")


def multilevel_roi_align(
    inputs: List[Tensor],
    boxes: Tensor,
    levels: Tensor,
    output_size: BroadcastingList2[int],
    spatial_scales: List[float],
    sampling_ratio: int = -1,
    aligned: bool = False,
    deterministic: Optional[bool] = None,
) -> Tensor:
    """RoIAlign of RoI ``k`` on ``inputs[levels[k]]`` with ``spatial_scales[levels[k]]``, all
    levels in one op (no per-level selection, no host synchronisation). ``inputs``: feature maps
    ``[N, C, H_l, W_l]``; ``levels``: int64 ``[K]``. Differentiable in every input."""
    if torch.jit.is_scripting():
        ph, pw = output_size_pair(output_size)
        det = False if deterministic is None else deterministic
        return torch.ops.frcnn_fast.multilevel_roi_align(
            inputs, boxes, levels, spatial_scales, ph, pw, sampling_ratio, aligned, det
        )
    if not isinstance(inputs, (list, tuple)) or len(inputs) == 0:
        raise TypeError("inputs must be a non-empty list of Tensor[N, C, H, W]")
    for i, x in enumerate(inputs):
        check_tensor(x, f"inputs[{i}]")
    rois = convert_boxes_to_roi_format(boxes)
    check_tensor(rois, "boxes")
    check_tensor(levels, "levels")
    ph, pw = check_output_size(output_size)
    if len(spatial_scales) != len(inputs):
        raise ValueError(
            f"spatial_scales must have one entry per input ({len(inputs)}), got {len(spatial_scales)}"
        )
    scales = [check_scale(s, "spatial_scales") for s in spatial_scales]
    det = resolve_deterministic(deterministic)
    return torch.ops.frcnn_fast.multilevel_roi_align.default(
        list(inputs),
        rois,
        levels,
        scales,
        ph,
        pw,
        _check_sampling_ratio(sampling_ratio),
        bool(aligned),
        det,
    )


def _ml_setup_context(ctx, inputs, output):
    maps, rois, levels, scales, ph, pw, sampling_ratio, aligned, *rest = inputs
    det = rest[0] if rest else False
    ctx.num_inputs = len(inputs)  # backward returns one entry per input
    ctx.save_for_backward(rois, levels)
    n, c = maps[0].shape[:2]
    ctx.args = (
        scales,
        ph,
        pw,
        n,
        c,
        [x.shape[2] for x in maps],
        [x.shape[3] for x in maps],
        sampling_ratio,
        aligned,
        channels_last(maps[0]),
        det,
    )


def _ml_backward(ctx, grad):
    rois, levels = ctx.saved_tensors
    grads = torch.ops.frcnn_fast._multilevel_roi_align_backward.default(
        grad, rois, levels, *ctx.args
    )
    # spatial_scales is a list in the inputs' structure: one None per entry
    return (list(grads),) + (None,) * (ctx.num_inputs - 1)


torch.library.register_autograd(
    "frcnn_fast::multilevel_roi_align", _ml_backward, setup_context=_ml_setup_context
)
no_double_backward("frcnn_fast::_multilevel_roi_align_backward", "multilevel_roi_align")


class RoIAlign(nn.Module):
    """``nn.Module`` form of :func:`roi_align` (torchvision's ``RoIAlign``)."""

    def __init__(
        self, output_size, spatial_scale: float, sampling_ratio: int, aligned: bool = False
    ):
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(self, input: Tensor, rois: Union[Tensor, List[Tensor]]) -> Tensor:
        return roi_align(
            input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned
        )

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}"
        )
