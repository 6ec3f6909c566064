from .anchor_targets import anchor_targets
from .anchors import (
    AnchorGenerator,
    anchors_inside,
    base_anchors,
    generate_anchors,
    generate_anchors_multilevel,
)
from .losses import box_head_loss, rpn_loss, smooth_l1_loss
from .proposal_targets import proposal_targets
from .proposals import generate_proposals, generate_proposals_padded
from .sampling import balanced_sample

__all__ = [
    "AnchorGenerator",
    "anchor_targets",
    "anchors_inside",
    "balanced_sample",
    "base_anchors",
    "box_head_loss",
    "generate_anchors",
    "generate_anchors_multilevel",
    "generate_proposals",
    "generate_proposals_padded",
    "proposal_targets",
    "rpn_loss",
    "smooth_l1_loss",
]
