"""The rules every csrc/cuda file follows so that the emulated build runs the same code as the
GPU (CONTRIBUTING.md, "Writing CUDA kernels"), and the emulated build's coverage of the CUDA kernels."""

import re
from pathlib import Path

import pytest
import torch

import frcnn_fast

from . import LIBRARY, load

pytestmark = pytest.mark.cuda_emu

CUDA_DIR = Path(__file__).resolve().parents[2] / "csrc" / "cuda"
KERNEL_FILES = sorted(CUDA_DIR.glob("*.cu")) + sorted(
    p for p in CUDA_DIR.glob("*.cuh") if p.name != "device.cuh"
)

FORBIDDEN = [
    (r"<<<", "launch through FRCNN_LAUNCH, never <<<...>>> by hand"),
    (
        r"#\s*include\s*[<\"](cuda|cub|thrust|cooperative_groups|c10/cuda|ATen/cuda)",
        "CUDA headers only through device.cuh",
    ),
    (
        r"\bcub::|\bthrust::|cooperative_groups",
        "no CUB, Thrust or cooperative groups inside kernels (use ATen on the host)",
    ),
    (r"__CUDA_ARCH__", "no __CUDA_ARCH__ branches"),
    (
        r"\b__shared__\b",
        "shared memory through FRCNN_DYNAMIC_SHARED / FRCNN_STATIC_SHARED (the emulated build "
        "gives them memory the sanitizers see)",
    ),
    (
        r"\b__(shfl|shfl_up|shfl_down|shfl_xor|ballot|any|all)\s*\(",
        "warp collectives with explicit masks (the _sync forms)",
    ),
    (r"TORCH_LIBRARY_IMPL\s*\(", "register through FRCNN_CUDA_LIBRARY_IMPL"),
    (
        r"c10::cuda::|at::cuda::",
        "CUDA runtime support through device.cuh (DeviceGuard, current_stream)",
    ),
]


def _code(path):
    """The file without comments and string literals."""
    text = path.read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(\\.|[^"\\])*"', '""', text)


@pytest.mark.parametrize("path", KERNEL_FILES, ids=[p.name for p in KERNEL_FILES])
def test_kernel_file_follows_the_rules(path):
    code = _code(path)
    broken = [why for pattern, why in FORBIDDEN if re.search(pattern, code)]
    assert not broken, f"{path.name}: " + "; ".join(broken)
    if path.suffix == ".cu":
        assert '#include "device.cuh"' in path.read_text(), f"{path.name} must include device.cuh"


def _ops(namespace):
    return sorted(
        name.split("::")[1]
        for name in torch._C._dispatch_get_all_op_names()
        if name.startswith(namespace + "::")
    )


def test_every_cuda_kernel_is_emulated():
    """Every frcnn_fast op has an emulated CUDA kernel, so that none reaches a GPU unexecuted
    (the op-vs-reference tests run each of them through the cuda_emu device); the CPU-only ops
    (helpers.CPU_ONLY_OPS, each with its reason) have neither."""
    from helpers import CPU_ONLY_OPS

    load()
    ops = [op for op in _ops("frcnn_fast") if op not in CPU_ONLY_OPS]
    assert ops, "no frcnn_fast op registered"
    missing = [
        op
        for op in ops
        if not torch._C._dispatch_has_kernel_for_dispatch_key(f"{LIBRARY}::{op}", "CPU")
    ]
    assert not missing, f"ops without an emulated CUDA kernel: {missing}"
    if "cuda" in frcnn_fast.build_info()["backends"]:
        no_cuda = [
            op
            for op in ops
            if not torch._C._dispatch_has_kernel_for_dispatch_key(f"frcnn_fast::{op}", "CUDA")
        ]
        assert not no_cuda, f"ops without a CUDA kernel in _C: {no_cuda}"
