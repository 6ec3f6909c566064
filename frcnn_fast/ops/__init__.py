from .box_coding import decode_boxes, encode_boxes
from .boxes import box_area, box_convert, box_iou, box_iou_aligned, clip_boxes, remove_small_boxes
from .match import match_boxes, match_boxes_batched
from .nms import batched_nms, batched_nms_padded, nms, nms_padded
from .poolers import MultiScaleRoIAlign
from .roi_align import RoIAlign, multilevel_roi_align, roi_align
from .roi_pool import RoIPool, roi_pool

__all__ = (
    "MultiScaleRoIAlign RoIAlign RoIPool batched_nms batched_nms_padded box_area box_convert "
    "box_iou box_iou_aligned clip_boxes decode_boxes encode_boxes match_boxes "
    "match_boxes_batched multilevel_roi_align nms nms_padded remove_small_boxes roi_align "
    "roi_pool"
).split()
