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
from .ops import *  # noqa: F403  (every wrapper of frcnn_fast.ops, by its __all__)
from .ops import __all__ as _ops
from .ops.boxes import BOX_FORMATS, clip_boxes_to_image
from .torchvision_patch import count_kernels, is_patched, patch_torchvision


def build_info():
    """What the loaded ``_C`` was compiled with.

    Returns a dict with ``backends`` (``["cpu"]`` or ``["cpu", "cuda"]``), ``cuda_version``
    (the CUDA runtime compiled against, or None), ``cuda_archs`` (``TORCH_CUDA_ARCH_LIST``
    entries), ``torch_version`` (the torch the binary was built against), ``cpu_only_requested``
    (True when the build was asked to leave CUDA out with ``FRCNN_FAST_CPU_ONLY=1``),
    ``cpu_isa`` (the instruction set the CPU RoI loops run: ``"avx2"`` where the processor has
    it, else ``"baseline"``; ``FRCNN_FAST_CPU_ISA`` pins it; every set gives the same bits),
    ``cpu_isas`` (the sets this processor runs) and ``version``.
    """
    info = dict(_C.build_info())
    info["cpu_isa"], supported = _C.cpu_isa()
    info["cpu_isas"] = supported.split(", ")
    info["cuda_archs"] = [a for a in info["cuda_archs"].replace(" ", ";").split(";") if a]
    info["version"] = __version__
    return info


__all__ = (
    _ops
    + (
        "AnchorGenerator anchors_inside base_anchors generate_anchors generate_anchors_multilevel "
        "BOX_FORMATS build_info reference clip_boxes_to_image count_kernels is_patched "
        "patch_torchvision"
    ).split()
)
