"""The CUDA emulator: runs frcnn_fast's CUDA kernels on the CPU, in every ``make test``.

No developer or CI machine has a GPU. So the same ``csrc/cuda/*.cu`` files that nvcc compiles
into ``frcnn_fast._C`` are also compiled by the host compiler into a test-only extension
(:mod:`tests.cuda_emu.build`), where each block's threads run as fibers, ``__syncthreads`` and
warp collectives are real meeting points, and a seed shuffles which thread runs next and the
order of blocks. Its ops, ``torch.ops.frcnn_fast_cuda_emu.*``, take CPU tensors.

Tests reach them through :func:`emulated`: inside it, every call of a ``torch.ops.frcnn_fast``
op (direct, through the Python wrappers, or from autograd) runs the emulated CUDA kernel
instead of the CPU one, so a test written for ``device="cuda"`` runs unchanged on CPU tensors.
``tests/helpers.py`` turns that into the ``cuda_emu`` device parameter.

Which build is loaded: ``FRCNN_CUDA_EMU_VARIANT`` = ``plain`` (default), ``address`` or
``thread`` (``make sanitize`` sets it and preloads the sanitizer runtime).
"""

import contextlib
import functools
import importlib
import os
import zlib

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = [
    "LIBRARY",
    "SETTINGS",
    "EmulatedCuda",
    "emulated",
    "load",
    "restore",
    "sanitized",
    "seed_for",
    "variant",
]

# The op library of the emulated kernels (csrc/*.cpp compiled with FRCNN_FAST_LIBRARY set to it).
LIBRARY = "frcnn_fast_cuda_emu"


def variant():
    return os.environ.get("FRCNN_CUDA_EMU_VARIANT", "plain")


def sanitized():
    """Whether the emulated kernels run under a sanitizer (``make sanitize``), several times
    slower: the largest test cases then keep their sizes (the code paths those sizes reach) but
    run fewer repetitions."""
    return variant() != "plain"


@functools.lru_cache(maxsize=None)
def load():
    """The emulated build's Python module (built first if it is missing or out of date).
    A build that fails raises: the tests that need it then fail, they never skip."""
    from .build import build  # not at import: `python -m tests.cuda_emu.build` imports us first

    return build(variant())


def _emulated_op(func):
    namespace, name = func._schema.name.split("::")
    packet = getattr(getattr(torch.ops, LIBRARY), name, None)
    if packet is None:
        raise NotImplementedError(
            f"{namespace}::{name} has no CUDA kernel in the emulated build (csrc/cuda has none for it)"
        )
    return getattr(packet, func._overloadname)


class EmulatedCuda(TorchDispatchMode):
    """Sends every ``frcnn_fast::*`` op to its emulated CUDA kernel; other ops run as usual."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.namespace == "frcnn_fast":
            return _emulated_op(func)(*args, **kwargs)
        return func(*args, **kwargs)


def seed_for(text):
    """A stable seed for a test (its node id), so a failure replays with the same schedules."""
    return zlib.crc32(text.encode())


# The settings configure() takes, as config() reports them.
SETTINGS = ("seed", "workers", "max_grid_dim", "schedule", "pct_depth")


def restore(ext, saved):
    """Put back the settings of an earlier ``ext.config()``."""
    ext.configure(**{k: saved[k] for k in SETTINGS})


@contextlib.contextmanager
def emulated(seed=0, workers=2, max_grid_dim=0, schedule="mixed", pct_depth=3):
    """Run ``torch.ops.frcnn_fast`` ops on the emulated CUDA kernels inside the block.

    ``seed`` picks the schedules (every launch inside draws its own from it); ``workers`` is
    the number of OS threads running blocks; ``max_grid_dim`` is the cap the launch code sees
    (65535 as on a GPU, a small number to push small inputs through grid-stride loops, 0 for a
    seeded random choice per launch); ``schedule`` is ``"uniform"`` (a random runnable thread at
    every scheduling point), ``"pct"`` (probabilistic concurrency testing with bug depth
    ``pct_depth``: random thread or warp priorities, changed at ``pct_depth - 1`` random steps)
    or ``"mixed"`` (each block draws one of the two from the seed).
    """
    ext = load()
    saved = ext.config()
    ext.configure(
        seed=seed,
        workers=workers,
        max_grid_dim=max_grid_dim,
        schedule=schedule,
        pct_depth=pct_depth,
    )
    # CPU tensors stand for CUDA ones here: roi_pool must take the path it takes on CUDA (the
    # stored argmax), not the CPU's recomputing backward, which has no CUDA kernel.
    # (the module, not the function of the same name that frcnn_fast.ops exports)
    roi_pool_module = importlib.import_module("frcnn_fast.ops.roi_pool")
    recompute_on = roi_pool_module.RECOMPUTE_ARGMAX_ON
    roi_pool_module.RECOMPUTE_ARGMAX_ON = ()
    try:
        with EmulatedCuda():
            yield ext
    finally:
        roi_pool_module.RECOMPUTE_ARGMAX_ON = recompute_on
        restore(ext, saved)
