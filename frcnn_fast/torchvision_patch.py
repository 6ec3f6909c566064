"""Run torchvision's detectors on our kernels: :func:`patch_torchvision`.

torchvision's detection code reaches its ops through several names: ``box_ops.batched_nms``
(``torchvision.ops.boxes``) in the RPN and the box head, ``roi_align`` imported into
``torchvision.ops.poolers`` and ``torchvision.models.detection.roi_heads``,
``self.box_similarity`` bound to ``box_iou`` when a ``RegionProposalNetwork`` or ``RoIHeads``
is built, and the ``forward`` methods of ``RoIAlign``, ``RoIPool`` and ``MultiScaleRoIAlign``. The patch rebinds every one of them to our functions,
which take torchvision's arguments, and puts the originals back on exit, object for object.
Classes are never replaced (torchvision's constructors check ``isinstance``); only methods.

Not routed, deliberately: ``AnchorGenerator`` and ``BoxCoder``. Their outputs are training
targets and proposals whose float rounding our kernels reproduce only to the last bit or so
(a different operation order), they cost little next to NMS and RoI pooling, and
``BoxCoder``'s ``encode_single(reference_boxes=gt, proposals)`` argument names mean the opposite
of the names a user of ours would reach for, so routing it would invite the very keyword
mix-up :func:`frcnn_fast.encode_boxes` guards against. ``box_convert`` is not routed either
(torchvision's is elementwise arithmetic already).
"""

import gc
import importlib
import sys
from collections import Counter
from typing import List, Tuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from .ops.boxes import box_area, box_iou, clip_boxes, remove_small_boxes
from .ops.nms import batched_nms, nms
from .ops.roi_align import RoIAlign as _OurRoIAlign
from .ops.roi_align import roi_align
from .ops.roi_pool import RoIPool as _OurRoIPool
from .ops.roi_pool import roi_pool

# (module, attribute) -> our replacement. Module names are resolved when the patch is enabled.
_FUNCTIONS = {
    "nms": nms,
    "batched_nms": batched_nms,
    "box_iou": box_iou,
    "box_area": box_area,
    "clip_boxes_to_image": clip_boxes,
    "remove_small_boxes": remove_small_boxes,
    "roi_align": roi_align,
    "roi_pool": roi_pool,
}
_BOX_OPS = (
    "nms",
    "batched_nms",
    "box_iou",
    "box_area",
    "clip_boxes_to_image",
    "remove_small_boxes",
)
_SITES: List[Tuple[str, Tuple[str, ...]]] = [
    ("torchvision.ops.boxes", _BOX_OPS),
    ("torchvision.ops", (*_BOX_OPS, "roi_align", "roi_pool")),
    ("torchvision.ops.roi_align", ("roi_align",)),
    ("torchvision.ops.roi_pool", ("roi_pool",)),
    # Not poolers' box_area: only LevelMapper calls it, and TorchScript keeps a script class
    # compiled once for the whole process (no cache we may reset), so a LevelMapper scripted
    # under the patch would keep our box_area after it. Our MultiScaleRoIAlign.forward maps
    # levels itself on the device.
    ("torchvision.ops.poolers", ("roi_align",)),
    ("torchvision.models.detection.roi_heads", ("roi_align",)),
]

_state = {"depth": 0, "saved": None, "pipeline_depth": 0, "pipeline_saved": None}


def _module(name):
    # sys.modules, not getattr: torchvision.ops.roi_align is also the name of a function.
    importlib.import_module(name)
    return sys.modules[name]


def torchvision_original(name: str):
    """torchvision's own ``torchvision.ops.boxes.<name>`` (or ``roi_align``/``roi_pool``),
    whether or not the patch is on: what our functions delegate to where we have no kernel
    (rotated boxes)."""
    saved = _state["saved"]
    if saved is not None:
        for (mod, attr), value in saved["attrs"].items():
            if mod == "torchvision.ops.boxes" and attr == name:
                return value
    return getattr(_module("torchvision.ops.boxes"), name)


def _detector_instances():
    from torchvision.models.detection.roi_heads import RoIHeads
    from torchvision.models.detection.rpn import RegionProposalNetwork

    # type(), not isinstance: isinstance reads __class__, which some module proxies in
    # gc's list answer with a deprecation warning.
    classes = (RegionProposalNetwork, RoIHeads)
    return [o for o in gc.get_objects() if issubclass(type(o), classes)]


def _reset_torchscript_caches():
    """TorchScript compiles a function or module class once and keeps it: what was scripted
    before a switch would keep the kernels it was compiled against."""
    # (Not the overload cache: TorchScript drops an overload's declarations once compiled.)
    torch.jit._state._jit_caching_layer.clear()
    store = torch.jit._recursive.concrete_type_store
    store.type_store.clear()
    store.methods_compiled.clear()


def _enable():
    import torchvision.ops.poolers as tv_poolers
    import torchvision.ops.roi_align as _  # noqa: F401  (sys.modules entries below)
    import torchvision.ops.roi_pool as _  # noqa: F401,F811

    from . import _torchvision_poolers

    saved = {"attrs": {}, "methods": {}, "instances": []}
    tv_boxes = _module("torchvision.ops.boxes")
    original_box_iou = tv_boxes.box_iou
    for mod_name, attrs in _SITES:
        mod = _module(mod_name)
        for attr in attrs:
            saved["attrs"][(mod_name, attr)] = getattr(mod, attr)
    methods = {
        sys.modules["torchvision.ops.roi_align"].RoIAlign: _OurRoIAlign.forward,
        sys.modules["torchvision.ops.roi_pool"].RoIPool: _OurRoIPool.forward,
        tv_poolers.MultiScaleRoIAlign: _torchvision_poolers.multiscale_forward,
    }
    for cls in methods:
        saved["methods"][cls] = cls.__dict__["forward"]
    instances = _detector_instances()
    for inst in instances:
        if "box_similarity" in inst.__dict__ and inst.box_similarity is original_box_iou:
            saved["instances"].append(inst)

    for (mod_name, attr), _value in saved["attrs"].items():
        setattr(_module(mod_name), attr, _FUNCTIONS[attr])
    for cls, forward in methods.items():
        cls.forward = forward
    for inst in saved["instances"]:
        inst.box_similarity = box_iou
    _state["saved"] = saved
    _reset_torchscript_caches()


def _disable():
    saved = _state["saved"]
    for (mod_name, attr), value in saved["attrs"].items():
        setattr(_module(mod_name), attr, value)
    for cls, forward in saved["methods"].items():
        cls.forward = forward
    original_box_iou = saved["attrs"][("torchvision.ops.boxes", "box_iou")]
    # Detectors built while the patch was on took our box_iou at construction: they go back too.
    for inst in _detector_instances():
        if inst.__dict__.get("box_similarity") is box_iou:
            inst.box_similarity = original_box_iou
    _state["saved"] = None
    _reset_torchscript_caches()


def _enable_pipeline():
    from . import _torchvision_pipeline

    routed = _torchvision_pipeline.methods()
    # The very objects found in each class's own __dict__ (what a subclass inherits is left
    # alone), put back on disable.
    _state["pipeline_saved"] = {key: key[0].__dict__[key[1]] for key in routed}
    for (cls, name), fn in routed.items():
        setattr(cls, name, fn)
    _reset_torchscript_caches()


def _disable_pipeline():
    for (cls, name), original in _state["pipeline_saved"].items():
        setattr(cls, name, original)
    _state["pipeline_saved"] = None
    _reset_torchscript_caches()


def is_patched() -> bool:
    return _state["saved"] is not None


def is_pipeline_patched() -> bool:
    return _state["pipeline_saved"] is not None


class patch_torchvision:
    """Route torchvision's box ops, NMS and RoI pooling to frcnn_fast's kernels.

    As a context manager (``with frcnn_fast.patch_torchvision(): model(images)``) the routing
    holds inside the block; ``patch_torchvision().enable()`` switches it on until
    ``.disable()``. Nesting and repeated enables are counted: the originals come back when the
    outermost user disables. Models scripted while the patch is on run our kernels scripted;
    ``torch.jit`` caches are reset at every switch so that nothing compiled before leaks through.

    ``pipeline=True`` also routes ``RegionProposalNetwork.filter_proposals`` /
    ``assign_targets_to_anchors`` and ``RoIHeads.postprocess_detections`` /
    ``select_training_samples`` to batched versions (``frcnn_fast._torchvision_pipeline``), in
    eager mode only: those are Python functions TorchScript cannot compile, so script a model
    with the pipeline off. Counted apart from the plain patch, restored object for object.
    """

    def __init__(self, pipeline: bool = False):
        self._active = False
        self._pipeline = bool(pipeline)

    def enable(self) -> "patch_torchvision":
        if self._active:
            return self
        if _state["depth"] == 0:
            _enable()
        _state["depth"] += 1
        if self._pipeline:
            if _state["pipeline_depth"] == 0:
                _enable_pipeline()
            _state["pipeline_depth"] += 1
        self._active = True
        return self

    def disable(self) -> None:
        if not self._active:
            return
        self._active = False
        if self._pipeline:
            _state["pipeline_depth"] -= 1
            if _state["pipeline_depth"] == 0:
                _disable_pipeline()
        _state["depth"] -= 1
        if _state["depth"] == 0:
            _disable()

    def __enter__(self) -> "patch_torchvision":
        return self.enable()

    def __exit__(self, *exc) -> None:
        self.disable()


class count_kernels(TorchDispatchMode):
    """Count the dispatcher ops that run inside the block, by namespace: ``counts["frcnn_fast"]``
    and ``counts["torchvision"]`` tell whose kernels a model ran (eager and TorchScript alike).
    ``ops`` counts each ``namespace::name``."""

    def __init__(self):
        super().__init__()
        self.counts: Counter = Counter()
        self.ops: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        ns = func.namespace
        if ns in ("frcnn_fast", "torchvision"):
            self.counts[ns] += 1
            self.ops[f"{ns}::{func._opname}"] += 1
        return func(*args, **(kwargs or {}))


__all__ = [
    "count_kernels",
    "is_patched",
    "is_pipeline_patched",
    "patch_torchvision",
    "torchvision_original",
]
