"""RoI max pooling (Fast R-CNN), drop-in for ``torchvision.ops.roi_pool`` / ``RoIPool``."""

from typing import List, Optional, Union

import torch
from torch import Tensor, nn
from torch.jit.annotations import BroadcastingList2

from .._checks import check_tensor
from ._roi import (
    channels_last,
    check_output_size,
    check_scale,
    no_double_backward,
    output_size_pair,
    resolve_deterministic,
    rois_for,
)

# Device types whose roi_pool backward recomputes each bin's argmax from the input, so that the
# forward computes and stores none (the CPU: a bin's few cells cost less to rescan than its
# int64 argmax to stream back in). The CUDA emulator (tests/cuda_emu), whose CPU tensors stand
# for CUDA ones, empties it while it runs, so that the CUDA path is the one it tests.
RECOMPUTE_ARGMAX_ON = ("cpu",)


def _can_recompute_argmax(input: Tensor) -> bool:
    return input.device.type in RECOMPUTE_ARGMAX_ON


def _recomputes_argmax(input: Tensor, rois: Tensor, ph: int, pw: int) -> bool:
    """Whether a differentiable call takes the recomputing path. On an NCHW map the backward
    also pays two layout copies of the whole map (to channels-last and back), which the argmax
    it saves pays for only once the pooled bins outnumber twice the map's cells (measured here:
    at 128 RoIs of 7x7 on 2x512x50x50 the stored argmax was 13-18% faster, at 300 the
    recomputed one about 30%); a channels-last map needs no copy."""
    if not _can_recompute_argmax(input) or input.dim() != 4:
        return False  # (a bad input is left to the op's checks, which name what is wrong)
    n, _, h, w = input.shape
    return channels_last(input) or rois.shape[0] * ph * pw >= 2 * n * h * w


@torch.fx.wrap
def roi_pool(
    input: Tensor,
    boxes: Union[Tensor, List[Tensor]],
    output_size: BroadcastingList2[int],
    spatial_scale: float = 1.0,
    deterministic: Optional[bool] = None,
) -> Tensor:
    """Max over each of ``output_size`` bins of every RoI: ``[N, C, H, W] -> [K, C, PH, PW]``.

    ``boxes``: ``Tensor[K, 5]`` ``(batch_index, x1, y1, x2, y2)`` or a list of per-image
    ``Tensor[Ki, 4]``, in image coordinates; ``spatial_scale`` maps them onto ``input``.
    Differentiable in ``input``. ``deterministic`` (default
    ``torch.are_deterministic_algorithms_enabled()``) asks for a backward that gives the same
    bits on every run; the CPU backward always does. Under ``torch.no_grad()``, for an input
    that does not require grad, and on CPU (but for an NCHW map with few RoIs) it runs
    ``roi_pool_inference``, which skips the argmax; its CPU backward recomputes the argmax from
    the input, with the same bits. A quantized ``input`` is pooled in float and requantized with
    its scale and zero point (max pooling commutes with the affine map). Leaf of ``torch.fx``
    traces; compiles with ``torch.jit.script``.
    """
    if torch.jit.is_scripting():
        ph, pw = output_size_pair(output_size)
        det = False if deterministic is None else deterministic
        return torch.ops.frcnn_fast.roi_pool(
            input, rois_for(input, boxes), spatial_scale, ph, pw, det
        )[0]
    check_tensor(input, "input")
    if input.is_quantized:
        rois = rois_for(input, boxes)
        out = roi_pool(
            input.dequantize(),
            rois.dequantize() if rois.is_quantized else rois,
            output_size,
            spatial_scale,
        )
        return torch.quantize_per_tensor(out, input.q_scale(), input.q_zero_point(), input.dtype)
    rois = rois_for(input, boxes)
    if rois.dtype != input.dtype and rois.is_floating_point() and input.is_floating_point():
        # Mixed dtypes: pooled in the wider one, returned in input's dtype (see roi_align).
        common = torch.promote_types(input.dtype, rois.dtype)
        return roi_pool(
            input.to(common), rois.to(common), output_size, spatial_scale, deterministic
        ).to(input.dtype)
    ph, pw = check_output_size(output_size)
    scale = check_scale(spatial_scale)
    det = resolve_deterministic(deterministic)
    needs_grad = torch.is_grad_enabled() and input.requires_grad
    if needs_grad and not _recomputes_argmax(input, rois, ph, pw):
        return torch.ops.frcnn_fast.roi_pool.default(input, rois, scale, ph, pw, det)[0]
    # No argmax: either no gradient will flow back, or the backward recomputes each bin's
    # argmax from the input (CPU; the same comparisons, so the same bits).
    # Neither computes nor stores the int64 argmax, twice the output's bytes in float32.
    return torch.ops.frcnn_fast.roi_pool_inference.default(input, rois, scale, ph, pw)


def _setup_context(ctx, inputs, output):
    input, rois, _scale, _ph, _pw, *rest = inputs
    det = rest[0] if rest else False
    ctx.save_for_backward(rois, output[1])
    ctx.input_shape = input.shape
    ctx.channels_last = channels_last(input)
    ctx.deterministic = det


def _backward(ctx, grad, _grad_argmax):
    rois, argmax = ctx.saved_tensors
    n, c, h, w = ctx.input_shape
    grad_input = torch.ops.frcnn_fast._roi_pool_backward.default(
        grad, rois, argmax, n, c, h, w, ctx.channels_last, ctx.deterministic
    )
    return grad_input, None, None, None, None, None


torch.library.register_autograd("frcnn_fast::roi_pool", _backward, setup_context=_setup_context)
no_double_backward("frcnn_fast::_roi_pool_backward", "roi_pool")


def _inference_setup_context(ctx, inputs, output):
    input, rois, scale, _ph, _pw = inputs
    ctx.recompute = _can_recompute_argmax(input)
    if ctx.recompute:
        ctx.save_for_backward(input, rois)
        ctx.spatial_scale = scale


def _inference_backward(ctx, grad):
    if not ctx.recompute:
        raise RuntimeError(
            "roi_pool_inference has no argmax and so no gradient off CPU: call "
            "frcnn_fast.roi_pool, which picks roi_pool when the input requires grad"
        )
    input, rois = ctx.saved_tensors
    grad_input = torch.ops.frcnn_fast._roi_pool_backward_recompute.default(
        grad, input, rois, ctx.spatial_scale
    )
    return grad_input, None, None, None, None


# On CPU the backward recomputes the argmax from the saved input; elsewhere it is registered so
# that a direct call on an input that requires grad fails clearly at backward instead of
# returning a silently missing gradient.
torch.library.register_autograd(
    "frcnn_fast::roi_pool_inference", _inference_backward, setup_context=_inference_setup_context
)
no_double_backward("frcnn_fast::_roi_pool_backward_recompute", "roi_pool")


class RoIPool(nn.Module):
    """``nn.Module`` form of :func:`roi_pool` (torchvision's ``RoIPool``)."""

    def __init__(self, output_size, spatial_scale: float):
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale

    def forward(self, input: Tensor, rois: Union[Tensor, List[Tensor]]) -> Tensor:
        return roi_pool(input, rois, self.output_size, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"
