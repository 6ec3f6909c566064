"""Deterministic, realistic benchmark inputs (NumPy float64 master arrays).

Coordinates are rounded to multiples of 1/64 px: values up to a few thousand are then exact in
float32 and so are their differences (widths), so threshold ops such as ``remove_small_boxes``
have one right answer. For float16/bfloat16 runs the runner gives the reference the values
as rounded to that dtype (still multiples of 1/64), so the same holds there.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

import reference

QUANTUM = 1.0 / 64.0


def rng_for(seed: int, *keys: str) -> np.random.Generator:
    """A generator that depends only on the seed and the (op, case) names, not on run order."""
    salt = zlib.crc32("/".join(keys).encode())
    return np.random.default_rng([seed, salt])


def quantize(x: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(x, dtype=np.float64) / QUANTUM) * QUANTUM


def random_boxes(rng, n, extent=(0.0, 1000.0), min_side=4.0, max_side=400.0):
    """``[n, 4]`` valid xyxy boxes (x1 < x2, y1 < y2) with log-uniform sides inside ``extent``."""
    lo, hi = extent
    max_side = min(max_side, hi - lo)
    log_lo, log_hi = math.log(min_side), math.log(max_side)
    w = np.exp(rng.uniform(log_lo, log_hi, n))
    h = np.exp(rng.uniform(log_lo, log_hi, n))
    x1 = lo + rng.uniform(0.0, 1.0, n) * (hi - lo - w)
    y1 = lo + rng.uniform(0.0, 1.0, n) * (hi - lo - h)
    boxes = quantize(np.stack([x1, y1, x1 + w, y1 + h], axis=1))
    # Rounding cannot invert a box with sides >= 4 px, but keep the promise explicit.
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    return boxes


def jitter_boxes(rng, boxes, centre_sigma=0.1, log_size_sigma=0.2):
    """Boxes near ``boxes`` (what a matched ground truth / a refined proposal looks like)."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    cx = boxes[:, 0] + 0.5 * w + rng.normal(0.0, centre_sigma, len(boxes)) * w
    cy = boxes[:, 1] + 0.5 * h + rng.normal(0.0, centre_sigma, len(boxes)) * h
    w2 = w * np.exp(rng.normal(0.0, log_size_sigma, len(boxes)))
    h2 = h * np.exp(rng.normal(0.0, log_size_sigma, len(boxes)))
    out = quantize(np.stack([cx - 0.5 * w2, cy - 0.5 * h2, cx + 0.5 * w2, cy + 0.5 * h2], axis=1))
    # Keep every box valid (>= one quantum per side) after rounding.
    out[:, 2] = np.maximum(out[:, 2], out[:, 0] + QUANTUM)
    out[:, 3] = np.maximum(out[:, 3], out[:, 1] + QUANTUM)
    return out


def grid_anchors_np(
    height, width, stride, sizes=(128, 256, 512), ratios=(0.5, 1.0, 2.0), offset=0.5
):
    """The tutorial RPN's anchors from the NumPy reference (docs/CONVENTIONS.md, golden
    vectors), quantized. ``[H*W*A, 4]``."""
    return quantize(reference.generate_anchors((height, width), stride, sizes, ratios, offset))


def random_deltas(
    rng, n, k=1, weights=(1.0, 1.0, 1.0, 1.0), sigma=(0.1, 0.1, 0.2, 0.2), clamp_frac=0.01
):
    """``[n, 4*k]`` regression outputs as a trained head emits them (already scaled by ``weights``).

    A fraction ``clamp_frac`` of the size deltas is made large enough to hit the decode clamp.
    """
    d = rng.normal(0.0, 1.0, (n, k, 4)) * np.asarray(sigma)
    big = rng.uniform(0.0, 1.0, (n, k, 2)) < clamp_frac
    d[..., 2:] = np.where(big, 5.0, d[..., 2:])
    d = d * np.asarray(weights, dtype=np.float64)
    return d.reshape(n, 4 * k)
