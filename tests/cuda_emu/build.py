"""Builds the emulated CUDA extension: csrc/cuda/*.cu compiled by the host C++ compiler.

    python -m tests.cuda_emu.build [--variant plain|address|thread] [--verbose]

The result is a test-only Python module (never installed with the package) whose torch ops,
``torch.ops.frcnn_fast_cuda_emu.*``, run the CUDA kernels' code on CPU tensors. It holds:

* the op schemas and input checks (csrc/*.cpp) under the library name ``frcnn_fast_cuda_emu``;
* every csrc/cuda/*.cu, compiled as C++ with tests/cuda_emu/include/frcnn_cuda_emu.h included
  first (CUDA keywords, types and intrinsics), registered for the CPU dispatch key;
* the emulator's runtime (tests/cuda_emu/runtime) and the kernels that test the emulator itself
  (tests/cuda_emu/selftest).

Variants: ``plain`` (``make test``), ``address`` (AddressSanitizer + UndefinedBehaviorSanitizer)
and ``thread`` (ThreadSanitizer), for ``make sanitize``. Each builds in build/cuda_emu/<variant>
and, like the main build, recompiles only what changed (ninja).
"""

import argparse
import glob
import os
from pathlib import Path

from . import LIBRARY

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CSRC = REPO / "csrc"
VARIANTS = {
    "plain": [],
    # -fno-sanitize-recover: undefined behaviour stops the run instead of printing and going on.
    "address": ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"],
    "thread": ["-fsanitize=thread"],
}


def module_name(variant):
    return LIBRARY if variant == "plain" else f"{LIBRARY}_{variant}"


def build_dir(variant):
    return REPO / "build" / "cuda_emu" / variant


def _wrappers(variant):
    """torch's extension builder sends .cu files to nvcc; a one-line .cpp that includes each
    one makes the host compiler take it instead (and __FILE__ still names the .cu)."""
    gen = build_dir(variant) / "gen"
    gen.mkdir(parents=True, exist_ok=True)
    cu_files = sorted(glob.glob(str(CSRC / "cuda" / "*.cu"))) + sorted(
        glob.glob(str(HERE / "selftest" / "*.cu"))
    )
    out = []
    for cu in cu_files:
        stem = Path(cu).stem
        prefix = "selftest_" if Path(cu).parent.name == "selftest" else ""
        path = gen / f"{prefix}{stem}.cpp"
        text = f'#include "{cu}"\n'
        if not path.exists() or path.read_text() != text:  # keep ninja's timestamps
            path.write_text(text)
        out.append(str(path))
    return out


def sources(variant):
    schemas = [p for p in sorted(glob.glob(str(CSRC / "*.cpp"))) if Path(p).name != "module.cpp"]
    runtime = sorted(glob.glob(str(HERE / "runtime" / "*.cpp")))
    return schemas + runtime + _wrappers(variant)


def build(variant="plain", verbose=False):
    """Builds (or finds up to date) the variant and returns its Python module."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    os.environ.setdefault("MAX_JOBS", "2")
    # A sanitizer runtime preloaded into this Python (make sanitize) has no business in the
    # compiler processes the build starts.
    os.environ.pop("LD_PRELOAD", None)
    from torch.utils.cpp_extension import load

    flags = [
        "-O1",
        # Line tables only: sanitizer reports and debuggers still name function, file and line,
        # and a translation unit compiles in about half the time of full -g (61 s against 113 s
        # for roi_align_kernel under ASan here), which is most of `make sanitize`'s build.
        "-g1",
        "-fno-omit-frame-pointer",
        # the CPU kernels' float semantics, so emulated CUDA results are bit-identical to them
        "-ffp-contract=off",
        "-fno-trapping-math",
        f"-DFRCNN_FAST_LIBRARY={LIBRARY}",
        "-include",
        "frcnn_cuda_emu.h",
        *VARIANTS[variant],
    ]
    bdir = build_dir(variant)
    bdir.mkdir(parents=True, exist_ok=True)
    return load(
        name=module_name(variant),
        sources=sources(variant),
        extra_cflags=flags,
        extra_ldflags=VARIANTS[variant],
        extra_include_paths=[str(HERE / "include"), str(HERE / "runtime"), str(CSRC)],
        build_directory=str(bdir),
        with_cuda=False,
        verbose=verbose,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="plain", choices=sorted(VARIANTS))
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    module = build(args.variant, verbose=args.verbose)
    print(f"built {module.__name__} ({module.__file__})")


if __name__ == "__main__":
    main()
