"""NumPy reference of the frcnn_fast ops: the readable truth the kernels are tested against.

NumPy only (no torch). Every function takes NumPy arrays (or things ``np.asarray`` accepts),
computes in float64 and returns float64 (bool / int64 where the op says so). The index math
mirrors the C++/CUDA kernels in ``csrc/`` line by line.
"""

from .anchors import anchors_inside, base_anchors, generate_anchors, generate_anchors_multilevel
from .boxes import (
    BOX_FORMATS,
    box_area,
    box_convert,
    box_iou,
    box_iou_aligned,
    clip_boxes,
    decode_boxes,
    encode_boxes,
    remove_small_boxes,
)
from .losses import box_head_loss, rpn_loss, smooth_l1_loss
from .matcher import match_boxes
from .nms import batched_nms, batched_nms_padded, nms, nms_padded
from .proposals import generate_proposals
from .roi_align import (
    fpn_levels,
    fpn_scale,
    multilevel_roi_align,
    multilevel_roi_align_backward,
    roi_align,
    roi_align_backward,
)
from .roi_pool import roi_pool, roi_pool_backward, roi_pool_with_argmax
from .targets import anchor_targets, balanced_sample, proposal_targets

__all__ = (
    "BOX_FORMATS anchors_inside base_anchors batched_nms batched_nms_padded box_area "
    "box_convert box_iou box_iou_aligned clip_boxes decode_boxes encode_boxes generate_anchors "
    "generate_anchors_multilevel match_boxes anchor_targets balanced_sample proposal_targets "
    "generate_proposals rpn_loss box_head_loss smooth_l1_loss nms nms_padded fpn_levels "
    "fpn_scale multilevel_roi_align multilevel_roi_align_backward remove_small_boxes roi_align "
    "roi_align_backward roi_pool roi_pool_backward roi_pool_with_argmax"
).split()
