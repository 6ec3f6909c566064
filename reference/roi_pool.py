"""RoI max pooling (Fast R-CNN / Caffe semantics, = ``torchvision.ops.roi_pool``).

Mirrors ``csrc/common/roi_math.h`` (``pool_roi``, ``pool_bin``) and ``csrc/cpu/roi_pool_kernel.cpp``.
Box geometry is computed in ``geometry`` (float32 for float32/float16/bfloat16 tensors, float64
for float64: what the kernels use), so bin edges land on the same cells; values are float64.
"""

import numpy as np

from ._roi import as_rois, c_round, clamped_int


def _pair(v):
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _roi_cells(coords, scale, geometry):
    g = geometry
    x1, y1, x2, y2 = (g(c) * g(scale) for c in coords)
    valid = all(np.isfinite(v) for v in (x1, y1, x2, y2))
    xs, ys, xe, ye = (clamped_int(c_round(v)) for v in (x1, y1, x2, y2))
    return valid, xs, ys, max(xe - xs + 1, 1), max(ye - ys + 1, 1)


def _bin(index, bins, start, size, limit, geometry):
    """Cells [begin, end) of bin ``index``: floor/ceil of multiples of size / bins, clipped."""
    g = geometry
    b = g(size) / g(bins)
    begin = clamped_int(np.floor(g(index) * b)) + start
    end = clamped_int(np.ceil(g(index + 1) * b)) + start
    return min(max(begin, 0), limit), min(max(end, 0), limit)


def roi_pool_with_argmax(input, boxes, output_size, spatial_scale=1.0, geometry=np.float32):
    """``(output[K, C, PH, PW], argmax[K, C, PH, PW] int64)``. ``argmax`` is the flat index
    ``h * W + w`` of the maximum in the RoI's image plane; an empty bin (or a bin with no value
    above the lowest finite float) gives 0 and -1. A RoI with a non-finite coordinate has only
    empty bins."""
    x = np.asarray(input, dtype=np.float64)
    if x.ndim != 4:
        raise ValueError(f"input must have shape [N, C, H, W], got {x.shape}")
    n, c, h, w = x.shape
    ph_n, pw_n = _pair(output_size)
    batch, coords = as_rois(boxes, n)
    k = len(batch)
    out = np.zeros((k, c, ph_n, pw_n))
    arg = np.full((k, c, ph_n, pw_n), -1, dtype=np.int64)
    lowest = np.finfo(geometry).min  # the kernels start the max at the lowest finite value
    for r in range(k):
        valid, xs, ys, rw, rh = _roi_cells(coords[r], spatial_scale, geometry)
        if not valid:
            continue
        plane = x[batch[r]].reshape(c, h * w)
        for ph in range(ph_n):
            h0, h1 = _bin(ph, ph_n, ys, rh, h, geometry)
            for pw in range(pw_n):
                w0, w1 = _bin(pw, pw_n, xs, rw, w, geometry)
                if h1 <= h0 or w1 <= w0:
                    continue
                cells = (np.arange(h0, h1)[:, None] * w + np.arange(w0, w1)[None, :]).reshape(-1)
                vals = plane[:, cells]  # [C, cells] in row-major cell order
                # strict '>' from the lowest value: the first maximum wins, NaN never does
                above = vals > lowest
                best = np.argmax(np.where(above, vals, -np.inf), axis=1)
                has = above.any(axis=1)
                out[r, :, ph, pw] = np.where(has, vals[np.arange(c), best], lowest)
                arg[r, :, ph, pw] = np.where(has, cells[best], -1)
    return out, arg


def roi_pool(input, boxes, output_size, spatial_scale=1.0, geometry=np.float32):
    """RoI max pooling ``[N, C, H, W] -> [K, C, PH, PW]``; see :func:`roi_pool_with_argmax`."""
    return roi_pool_with_argmax(input, boxes, output_size, spatial_scale, geometry)[0]


def roi_pool_backward(grad_output, boxes, argmax, input_shape):
    """``grad_input[n, c].flat[argmax] += grad_output`` for every bin with ``argmax >= 0``."""
    g = np.asarray(grad_output, dtype=np.float64)
    n, c, h, w = input_shape
    batch, _ = as_rois(boxes, n)
    grad = np.zeros((n, c, h * w))
    channel = np.broadcast_to(np.arange(c)[:, None], (c, argmax.shape[2] * argmax.shape[3]))
    for r in range(len(batch)):
        a = argmax[r].reshape(c, -1)
        keep = a >= 0
        np.add.at(grad[batch[r]], (channel[keep], a[keep]), g[r].reshape(c, -1)[keep])
    return grad.reshape(n, c, h, w)
