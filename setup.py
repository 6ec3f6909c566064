"""Builds frcnn_fast._C: the C++ CPU kernels always, the CUDA kernels when they can be compiled.

CUDA is compiled when torch is a CUDA build and nvcc is found (a visible GPU is not needed),
or when FORCE_CUDA=1; FRCNN_FAST_CPU_ONLY=1 turns it off. TORCH_CUDA_ARCH_LIST overrides the
default architectures.
"""

import glob
import os
import shutil

import torch
from setuptools import setup


def _cuda_home_from_nvcc():
    """The toolkit behind the nvcc on PATH, following symlinks and one-line wrapper scripts
    (torch would otherwise take the wrapper's folder, e.g. /usr/local, for the toolkit)."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    nvcc = os.path.realpath(nvcc)
    with open(nvcc, "rb") as f:
        head = f.read(4096)
    if head.startswith(b"#!"):
        for word in head.decode(errors="ignore").split():
            if word.endswith("/bin/nvcc") and os.path.isfile(word):
                nvcc = os.path.realpath(word)
    home = os.path.dirname(os.path.dirname(nvcc))
    return home if os.path.isfile(os.path.join(home, "include", "cuda_runtime_api.h")) else None


# Must happen before torch.utils.cpp_extension reads CUDA_HOME at import.
if "CUDA_HOME" not in os.environ and "CUDA_PATH" not in os.environ:
    _home = _cuda_home_from_nvcc()
    if _home is not None:
        os.environ["CUDA_HOME"] = _home

from torch.utils.cpp_extension import (  # noqa: E402
    CUDA_HOME,
    BuildExtension,
    CppExtension,
    CUDAExtension,
)

ROOT = os.path.dirname(os.path.abspath(__file__))
# Turing (T4), Ampere and Hopper SASS, plus PTX so that newer GPUs can JIT the kernels. Each
# extra architecture costs a full device compile of every .cu file: keep the list short.
DEFAULT_CUDA_ARCHS = "7.5;8.0;9.0+PTX"


def cpu_only_requested():
    return os.environ.get("FRCNN_FAST_CPU_ONLY", "0") == "1"


def with_cuda():
    if cpu_only_requested():
        return False
    if os.environ.get("FORCE_CUDA", "0") == "1":
        return True
    return torch.version.cuda is not None and CUDA_HOME is not None


def write_build_config(path, cuda, archs):
    """Generated header with what this build compiled; rewritten only when it changes so that
    an unchanged build stays a no-op for ninja."""
    text = (
        "#pragma once\n"
        f'#define FRCNN_FAST_TORCH_VERSION "{torch.__version__}"\n'
        f'#define FRCNN_FAST_CUDA_ARCHS "{archs if cuda else ""}"\n'
        f"#define FRCNN_FAST_CPU_ONLY_REQUESTED {int(cpu_only_requested())}\n"
    )
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.exists(path) or open(path).read() != text:
        with open(path, "w") as f:
            f.write(text)


class PersistentBuildExtension(BuildExtension):
    """pip's editable install compiles in a fresh temporary directory every time; keeping the
    objects and ninja's state in build/temp makes a second build recompile only what changed."""

    def finalize_options(self):
        super().finalize_options()
        self.build_temp = os.path.join(ROOT, "build", "temp")


def extensions():
    cuda = with_cuda()
    if cuda:
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", DEFAULT_CUDA_ARCHS)
    archs = os.environ.get("TORCH_CUDA_ARCH_LIST", "")
    generated = os.path.join("build", "generated")
    write_build_config(os.path.join(ROOT, generated, "frcnn_fast_build_config.h"), cuda, archs)

    sources = sorted(glob.glob("csrc/*.cpp")) + sorted(glob.glob("csrc/cpu/*.cpp"))
    # at::parallel_for is OpenMP code inlined from the headers: without -fopenmp it runs serially.
    # -fno-trapping-math lets GCC turn the selects around a division (IoU's empty-union case)
    # into vector blends; results are unchanged, only FP traps are assumed off (as they are).
    # No FMA contraction on either side (-ffp-contract=off, nvcc -fmad=false): CPU and CUDA
    # then round every step alike and give bit-identical IoU, areas and anchors, which exact
    # comparisons such as NMS's IoU > threshold rely on. These kernels are memory bound.
    cxx_flags = [
        "-O3",
        "-fopenmp",
        "-fno-trapping-math",
        "-ffp-contract=off",
        "-include",
        "frcnn_fast_build_config.h",
    ]
    macros = []
    extension = CppExtension
    extra = {}
    if cuda:
        sources += sorted(glob.glob("csrc/cuda/*.cu"))
        macros.append(("FRCNN_FAST_WITH_CUDA", None))
        extension = CUDAExtension
        extra["nvcc"] = ["-O3", "-lineinfo", "-fmad=false"]
    extra["cxx"] = cxx_flags
    return [
        extension(
            name="frcnn_fast._C",
            sources=sources,
            include_dirs=[os.path.join(ROOT, "csrc"), os.path.join(ROOT, generated)],
            define_macros=macros,
            extra_compile_args=extra,
            extra_link_args=["-fopenmp"],
        )
    ]


setup(
    packages=["frcnn_fast", "frcnn_fast.ops", "frcnn_fast.detection", "frcnn_fast.reference"],
    package_dir={"frcnn_fast.reference": "reference"},
    ext_modules=extensions(),
    cmdclass={"build_ext": PersistentBuildExtension},
)
