"""frcnn_fast: fast, verified building blocks of two-stage object detectors.

The ops are PyTorch custom ops (``torch.ops.frcnn_fast.*``) with C++ CPU and CUDA kernels; the
functions here are thin wrappers with the same names as ``frcnn_fast.reference`` (NumPy).
"""

import torch  # noqa: F401  (libtorch must be loaded before the extension)

try:
    from . import _C
except ImportError as exc:  # a broken build must fail loudly, never fall back silently
    raise ImportError(
        f"frcnn_fast could not load its compiled extension frcnn_fast._C ({exc}). "
        "Build it with `make build` (or `pip install --no-build-isolation -e .`)."
    ) from exc

from . import (
    _fake,  # noqa: F401  (fake kernels for torch.compile / torch.export)
    reference,
)
from ._version import __version__
from .detection.anchors import (
    AnchorGenerator,
    anchors_inside,
    base_anchors,
    generate_anchors,
    generate_anchors_multilevel,
)
from .ops.box_coding import decode_boxes, encode_boxes
from .ops.boxes import (
    BOX_FORMATS,
    box_area,
    box_convert,
    box_iou,
    box_iou_aligned,
    clip_boxes,
    remove_small_boxes,
)
from .ops.match import match_boxes, match_boxes_batched
from .ops.nms import batched_nms, batched_nms_padded, nms, nms_padded
from .ops.poolers import MultiScaleRoIAlign
from .ops.roi_align import RoIAlign, multilevel_roi_align, roi_align
from .ops.roi_pool import RoIPool, roi_pool


def build_info():
    """What the loaded ``_C`` was compiled with.

    Returns a dict with ``backends`` (``["cpu"]`` or ``["cpu", "cuda"]``), ``cuda_version``
    (the CUDA runtime compiled against, or None), ``cuda_archs`` (``TORCH_CUDA_ARCH_LIST``
    entries), ``torch_version`` (the torch the binary was built against) and ``version``.
    """
    info = dict(_C.build_info())
    info["cuda_archs"] = [a for a in info["cuda_archs"].replace(" ", ";").split(";") if a]
    info["version"] = __version__
    return info


__all__ = [
    "AnchorGenerator",
    "BOX_FORMATS",
    "MultiScaleRoIAlign",
    "RoIAlign",
    "RoIPool",
    "anchors_inside",
    "base_anchors",
    "batched_nms",
    "batched_nms_padded",
    "box_area",
    "box_convert",
    "box_iou",
    "box_iou_aligned",
    "build_info",
    "clip_boxes",
    "decode_boxes",
    "encode_boxes",
    "generate_anchors",
    "generate_anchors_multilevel",
    "match_boxes",
    "match_boxes_batched",
    "nms",
    "nms_padded",
    "multilevel_roi_align",
    "reference",
    "remove_small_boxes",
    "roi_align",
    "roi_pool",
]
