"""frcnn_fast.build_info(): what was compiled. The CUDA backend must be built whenever torch has
CUDA and nvcc exists, GPU or not (setup.py builds the CUDA sources without a visible GPU)."""

import os
import shutil

import torch
from helpers import registered_ops

import frcnn_fast


def _nvcc_available():
    cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    candidates = [os.path.join(cuda_home, "bin", "nvcc")] if cuda_home else []
    candidates.append("/usr/local/cuda/bin/nvcc")
    return (
        any(os.path.isfile(c) and os.access(c, os.X_OK) for c in candidates)
        or shutil.which("nvcc") is not None
    )


def test_build_info_keys_and_types():
    info = frcnn_fast.build_info()
    assert isinstance(info, dict)
    keys = ("backends", "cuda_version", "cuda_archs", "torch_version", "cpu_only_requested")
    keys += ("cpu_isa", "cpu_isas")
    for key in keys + ("version",):
        assert key in info, f"build_info() lacks {key!r}: {info}"
    assert isinstance(info["backends"], list) and all(isinstance(b, str) for b in info["backends"])
    assert isinstance(info["cuda_archs"], list) and all(
        isinstance(a, str) for a in info["cuda_archs"]
    )
    assert info["cuda_version"] is None or isinstance(info["cuda_version"], str)
    assert isinstance(info["torch_version"], str) and info["torch_version"]
    assert isinstance(info["version"], str) and info["version"]
    assert isinstance(info["cpu_only_requested"], bool)
    assert "cpu" in info["backends"]
    # built against the torch that runs it (an ABI mismatch would not even load, but the
    # recorded version must be honest)
    assert info["torch_version"].split("+")[0] == torch.__version__.split("+")[0]


def test_cuda_backend_built_when_toolkit_present():
    info = frcnn_fast.build_info()
    # What the build was asked for is recorded in the binary: the environment of the test run
    # need not be the build's (an installed copy built with FRCNN_FAST_CPU_ONLY=1).
    want_cuda = (
        torch.version.cuda is not None and not info["cpu_only_requested"] and _nvcc_available()
    )
    if want_cuda:
        assert "cuda" in info["backends"], (
            f"torch has CUDA {torch.version.cuda} and nvcc exists, but {info}"
        )
        assert info["cuda_version"], info
        assert len(info["cuda_archs"]) > 0, info
    if "cuda" in info["backends"]:
        # the CUDA kernels are registered with the dispatcher even when no GPU is visible
        assert torch._C._dispatch_has_kernel_for_dispatch_key("frcnn_fast::box_iou", "CUDA")
        assert not info["cpu_only_requested"], info
    else:
        assert info["cuda_version"] is None and info["cuda_archs"] == [], info


def test_cpu_kernels_registered():
    for name in registered_ops():
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"frcnn_fast::{name}", "CPU"), name
