from .box_coding import decode_boxes, encode_boxes
from .boxes import box_area, box_convert, box_iou, box_iou_aligned, clip_boxes, remove_small_boxes

__all__ = [
    "box_area",
    "box_convert",
    "box_iou",
    "box_iou_aligned",
    "clip_boxes",
    "decode_boxes",
    "encode_boxes",
    "remove_small_boxes",
]
