"""Fake (meta) kernels: output shapes and dtypes for torch.compile and torch.export."""

import torch
from torch.library import register_fake

from .ops._roi import channels_last, format_of


@register_fake("frcnn_fast::box_area")
def _box_area(boxes):
    return boxes.new_empty(boxes.shape[:-1])


@register_fake("frcnn_fast::box_iou")
def _box_iou(boxes1, boxes2):
    return boxes1.new_empty((boxes1.shape[0], boxes2.shape[0]))


@register_fake("frcnn_fast::box_iou_aligned")
def _box_iou_aligned(boxes1, boxes2):
    return boxes1.new_empty(boxes1.shape[:-1])


@register_fake("frcnn_fast::box_convert")
def _box_convert(boxes, in_fmt, out_fmt):
    return torch.empty_like(boxes, memory_format=torch.contiguous_format)


@register_fake("frcnn_fast::clip_boxes")
def _clip_boxes(boxes, height, width):
    return torch.empty_like(boxes, memory_format=torch.contiguous_format)


@register_fake("frcnn_fast::remove_small_boxes")
def _remove_small_boxes(boxes, min_size):
    # How many boxes survive depends on their values.
    count = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((count,), dtype=torch.int64)


@register_fake("frcnn_fast::encode_boxes")
def _encode_boxes(reference_boxes, target_boxes, weights):
    return torch.empty_like(reference_boxes, memory_format=torch.contiguous_format)


@register_fake("frcnn_fast::decode_boxes")
def _decode_boxes(deltas, reference_boxes, weights, clamp):
    return torch.empty_like(deltas, memory_format=torch.contiguous_format)


@register_fake("frcnn_fast::grid_anchors")
def _grid_anchors(base_anchors, height, width, stride_y, stride_x, offset):
    return base_anchors.new_empty((height * width * base_anchors.shape[0], 4))


@register_fake("frcnn_fast::nms")
def _nms(boxes, scores, iou_threshold):
    # How many boxes are kept depends on their values.
    count = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((count,), dtype=torch.int64)


@register_fake("frcnn_fast::batched_nms")
def _batched_nms(boxes, scores, idxs, iou_threshold):
    count = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((count,), dtype=torch.int64)


@register_fake("frcnn_fast::nms_padded")
def _nms_padded(boxes, scores, iou_threshold, max_output, score_threshold=None):
    return boxes.new_empty((max_output,), dtype=torch.int64), boxes.new_empty((), dtype=torch.int64)


@register_fake("frcnn_fast::batched_nms_padded")
def _batched_nms_padded(boxes, scores, idxs, iou_threshold, max_output, score_threshold=None):
    return boxes.new_empty((max_output,), dtype=torch.int64), boxes.new_empty((), dtype=torch.int64)


# ---- RoI pooling / RoIAlign: outputs follow the input's memory format (channels-last in,
# channels-last out), by the wrappers' rule so that fake and real kernels cannot disagree.
def _pooled(x, k, ph, pw, dtype=None):
    return x.new_empty((k, x.shape[1], ph, pw), dtype=dtype).contiguous(
        memory_format=format_of(channels_last(x))
    )


def _grad_map(grad, shape, nhwc):
    return grad.new_empty(shape).contiguous(memory_format=format_of(nhwc))


@register_fake("frcnn_fast::roi_pool")
def _roi_pool(input, boxes, spatial_scale, pooled_height, pooled_width, deterministic=False):
    k = boxes.shape[0]
    return _pooled(input, k, pooled_height, pooled_width), _pooled(
        input, k, pooled_height, pooled_width, torch.int64
    )


@register_fake("frcnn_fast::_roi_pool_backward")
def _roi_pool_backward(
    grad, boxes, argmax, batch_size, channels, height, width, channels_last, deterministic
):
    return _grad_map(grad, (batch_size, channels, height, width), channels_last)


@register_fake("frcnn_fast::_roi_pool_backward_recompute")
def _roi_pool_backward_recompute(grad, input, boxes, spatial_scale):
    return _grad_map(grad, input.shape, channels_last(input))


@register_fake("frcnn_fast::roi_align")
def _roi_align(
    input,
    boxes,
    spatial_scale,
    pooled_height,
    pooled_width,
    sampling_ratio,
    aligned,
    deterministic=False,
):
    return _pooled(input, boxes.shape[0], pooled_height, pooled_width)


@register_fake("frcnn_fast::_roi_align_backward")
def _roi_align_backward(
    grad,
    boxes,
    spatial_scale,
    pooled_height,
    pooled_width,
    batch_size,
    channels,
    height,
    width,
    sampling_ratio,
    aligned,
    channels_last,
    deterministic,
):
    return _grad_map(grad, (batch_size, channels, height, width), channels_last)


@register_fake("frcnn_fast::multilevel_roi_align")
def _multilevel_roi_align(
    inputs,
    boxes,
    levels,
    spatial_scales,
    pooled_height,
    pooled_width,
    sampling_ratio,
    aligned,
    deterministic=False,
):
    return _pooled(inputs[0], boxes.shape[0], pooled_height, pooled_width)


@register_fake("frcnn_fast::_multilevel_roi_align_backward")
def _multilevel_roi_align_backward(
    grad,
    boxes,
    levels,
    spatial_scales,
    pooled_height,
    pooled_width,
    batch_size,
    channels,
    heights,
    widths,
    sampling_ratio,
    aligned,
    channels_last,
    deterministic,
):
    return [
        _grad_map(grad, (batch_size, channels, h, w), channels_last)
        for h, w in zip(heights, widths)
    ]


@register_fake("frcnn_fast::roi_pool_inference")
def _roi_pool_inference(input, boxes, spatial_scale, pooled_height, pooled_width):
    shape = (boxes.shape[0], input.shape[1], pooled_height, pooled_width)
    return torch.empty(
        shape, dtype=input.dtype, device=input.device, memory_format=format_of(channels_last(input))
    )


@register_fake("frcnn_fast::match_boxes")
def _match_boxes(
    gt_boxes, anchors, high_threshold, low_threshold, allow_low_quality_matches=False, validate=True
):
    n = anchors.shape[0]
    return anchors.new_empty((n,), dtype=torch.int64), anchors.new_empty((n,))


@register_fake("frcnn_fast::match_boxes_batched")
def _match_boxes_batched(
    gt_boxes,
    gt_counts,
    anchors,
    high_threshold,
    low_threshold,
    allow_low_quality_matches=False,
    validate=True,
):
    shape = (gt_boxes.shape[0], anchors.shape[0])
    return anchors.new_empty(shape, dtype=torch.int64), anchors.new_empty(shape)
