from .anchors import (
    AnchorGenerator,
    anchors_inside,
    base_anchors,
    generate_anchors,
    generate_anchors_multilevel,
)

__all__ = [
    "AnchorGenerator",
    "anchors_inside",
    "base_anchors",
    "generate_anchors",
    "generate_anchors_multilevel",
]
