from .box_coding import decode_boxes, encode_boxes
from .boxes import box_area, box_convert, box_iou, box_iou_aligned, clip_boxes, remove_small_boxes
from .nms import batched_nms, batched_nms_padded, nms, nms_padded

__all__ = [
    "batched_nms",
    "batched_nms_padded",
    "box_area",
    "box_convert",
    "box_iou",
    "box_iou_aligned",
    "clip_boxes",
    "decode_boxes",
    "encode_boxes",
    "nms",
    "nms_padded",
    "remove_small_boxes",
]
