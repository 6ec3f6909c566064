"""Shared helpers of the RoI references: the ``(batch_index, x1, y1, x2, y2)`` RoI format and the
C-style rounding the kernels use."""

import numpy as np


def as_rois(boxes, batch_size):
    """``boxes``: ``[K, 5]`` rows ``(batch_index, x1, y1, x2, y2)`` or a list of per-image
    ``[Ki, 4]`` arrays. Returns ``(batch_index[K] int64, coords[K, 4] float64)``."""
    if isinstance(boxes, (list, tuple)):
        parts = [np.asarray(b, dtype=np.float64).reshape(-1, 4) for b in boxes]
        idx = np.concatenate(
            [np.full(len(p), i, dtype=np.int64) for i, p in enumerate(parts)]
            or [np.zeros(0, np.int64)]
        )
        coords = np.concatenate(parts or [np.zeros((0, 4))], axis=0)
    else:
        rois = np.asarray(boxes, dtype=np.float64)
        if rois.ndim != 2 or rois.shape[1] != 5:
            raise ValueError(f"boxes must have shape [K, 5], got {rois.shape}")
        batch = rois[:, 0]
        if not np.all(np.isfinite(batch)) or np.any(batch != np.floor(batch)):
            raise ValueError("boxes[:, 0] (batch index) must hold integers")
        idx = batch.astype(np.int64)
        coords = rois[:, 1:]
    if np.any((idx < 0) | (idx >= batch_size)):
        raise ValueError(
            f"boxes batch index must be in [0, {batch_size}), got {idx[(idx < 0) | (idx >= batch_size)][:4]}"
        )
    return idx, coords


def c_round(v):
    """C ``round``: halves go away from zero (``np.round`` goes to even). Exact: ``v - trunc(v)``
    has no rounding error."""
    t = np.trunc(v)
    return t + np.where(np.abs(v - t) >= 0.5, np.sign(v), 0).astype(t.dtype)


def geometry_dtype(dtype):
    """The type the kernels do box geometry in for a tensor dtype name: float64 for float64,
    float32 for everything else (half types compute in float32)."""
    return np.float64 if str(dtype) in ("float64", "torch.float64") else np.float32


MAX_COORD = 2.0**40  # csrc/common/roi_math.h kMaxRoiCoord
MAX_GRID = 1024  # kMaxSamplingGrid


def clamped_int(v):
    """Float -> int as ``clamped_int`` in roi_math.h: NaN and huge values clamp to +-2^40."""
    v = np.float64(v)
    if not v > -MAX_COORD:
        return -int(MAX_COORD)
    if not v < MAX_COORD:
        return int(MAX_COORD)
    return int(v)
