"""RoIAlign (Mask R-CNN semantics, = ``torchvision.ops.roi_align``) and its multi-level (FPN) form.

Mirrors ``csrc/common/roi_math.h`` (``align_roi``, ``sample_coord``, ``axis_sample``). Box and
sample geometry is computed in ``geometry`` (float32 for float32/float16/bfloat16 tensors,
float64 for float64: what the kernels use); values are float64.

Bilinear interpolation on a grid of samples is separable: a bin's average is
``sum_{samples (y, x)} wy(y) * wx(x) * X[y, x] / count``, so with ``Ay[ph, row]`` = the summed
row weights of the bin's y samples and ``Ax[pw, col]`` likewise, the pooled map of a channel is
``Ay @ X @ Ax.T / count`` and its backward ``Ay.T @ G @ Ax / count``. The kernels evaluate the
same samples one by one; only the order of the float additions differs.
"""

import math

import numpy as np

from ._roi import MAX_GRID, as_rois


def _pair(v):
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _grid(roi_size, pooled, sampling_ratio, g):
    if sampling_ratio > 0:
        return int(sampling_ratio)
    v = np.ceil(g(roi_size) / g(pooled))
    if not v > 0:  # an inverted aligned box: no samples
        return 0
    return int(min(v, MAX_GRID))


def _axis_weights(start, bin_size, pooled, grid, size, g):
    """``A[p, cell]``: summed bilinear weights of the ``grid`` samples of bin ``p`` along one axis.
    A sample outside ``[-1, size]`` contributes nothing; below 0 it clamps to 0; at or past the
    last cell it sits on the last cell."""
    a = np.zeros((pooled, size))
    for p in range(pooled):
        for i in range(grid):
            v = start + g(p) * bin_size + g(np.float32(i) + np.float32(0.5)) * bin_size / g(grid)
            if v < -1 or v > size:
                continue
            v = max(v, g(0))
            low = int(v)
            if low >= size - 1:
                low = high = size - 1
                v = g(low)
            else:
                high = low + 1
            l = v - g(low)
            a[p, low] += float(g(1) - l)
            a[p, high] += float(l)
    return a


def _roi_operators(coords, scale, pooled, sampling_ratio, aligned, height, width, g):
    """``(Ay[PH, H], Ax[PW, W], count)`` of one RoI, or None when it has no samples."""
    ph_n, pw_n = pooled
    offset = g(0.5) if aligned else g(0)
    x1, y1, x2, y2 = (g(c) * g(scale) - offset for c in coords)
    if not all(np.isfinite(v) for v in (x1, y1, x2, y2)):
        return None
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:
        roi_w, roi_h = max(roi_w, g(1)), max(roi_h, g(1))
    bin_w, bin_h = roi_w / g(pw_n), roi_h / g(ph_n)
    grid_h = _grid(roi_h, ph_n, sampling_ratio, g)
    grid_w = _grid(roi_w, pw_n, sampling_ratio, g)
    if grid_h == 0 or grid_w == 0:
        return None
    count = float(max(grid_h * grid_w, 1))
    ay = _axis_weights(y1, bin_h, ph_n, grid_h, height, g)
    ax = _axis_weights(x1, bin_w, pw_n, grid_w, width, g)
    return ay, ax, count


def _support(a):
    """Slice of the cells with a non-zero weight column in ``a[pooled, cells]``."""
    used = np.flatnonzero(np.abs(a).sum(axis=0) > 0)
    return slice(used[0], used[-1] + 1) if len(used) else slice(0, 0)


def _roi_operators_of(
    boxes, levels, shapes, spatial_scales, pooled, sampling_ratio, aligned, geometry
):
    """``(k, level, image, ay, ax, count)`` for every RoI ``k`` that pools anything: its level
    (0 when ``levels`` is None), its image, and the interpolation operators of its map."""
    batch, coords = as_rois(boxes, shapes[0][0])
    levels = np.zeros(len(batch), np.int64) if levels is None else np.asarray(levels, np.int64)
    for r in range(len(batch)):
        h, w = shapes[levels[r]][2:]
        ops = _roi_operators(
            coords[r], spatial_scales[levels[r]], pooled, sampling_ratio, aligned, h, w, geometry
        )
        if ops is not None:
            yield (r, levels[r], batch[r], *ops)


def multilevel_roi_align(
    inputs,
    boxes,
    levels,
    output_size,
    spatial_scales,
    sampling_ratio=-1,
    aligned=False,
    geometry=np.float32,
):
    """RoIAlign of RoI ``k`` on feature map ``inputs[levels[k]]`` with ``spatial_scales[levels[k]]``.
    ``inputs``: list of ``[N, C, H_l, W_l]``. Returns ``[K, C, PH, PW]``."""
    xs = [np.asarray(x, dtype=np.float64) for x in inputs]
    n, c = xs[0].shape[:2]
    pooled = _pair(output_size)
    out = np.zeros((len(as_rois(boxes, n)[0]), c, *pooled))
    shapes = [x.shape for x in xs]
    for r, level, image, ay, ax, count in _roi_operators_of(
        boxes, levels, shapes, spatial_scales, pooled, sampling_ratio, aligned, geometry
    ):
        rows, cols = _support(ay), _support(ax)
        # only the rows and columns the RoI's samples touch
        window = xs[level][image][:, rows][:, :, cols]
        out[r] = ay[:, rows] @ (window @ ax[:, cols].T) / count
    return out


def roi_align(
    input,
    boxes,
    output_size,
    spatial_scale=1.0,
    sampling_ratio=-1,
    aligned=False,
    geometry=np.float32,
):
    """RoIAlign ``[N, C, H, W] -> [K, C, PH, PW]``. ``boxes``: ``[K, 5]`` ``(batch_index, x1, y1,
    x2, y2)`` or a list of per-image ``[Ki, 4]``. A RoI with a non-finite coordinate gives 0."""
    x = np.asarray(input, dtype=np.float64)
    if x.ndim != 4:
        raise ValueError(f"input must have shape [N, C, H, W], got {x.shape}")
    return multilevel_roi_align(
        [x], boxes, None, output_size, [spatial_scale], sampling_ratio, aligned, geometry
    )


def multilevel_roi_align_backward(
    grad_output,
    boxes,
    levels,
    input_shapes,
    spatial_scales,
    sampling_ratio=-1,
    aligned=False,
    geometry=np.float32,
):
    """Gradients ``[N, C, H_l, W_l]`` per level: each bin's gradient / count spread over the four
    bilinear neighbours of each of its samples."""
    g = np.asarray(grad_output, dtype=np.float64)
    grads = [np.zeros(s) for s in input_shapes]
    pooled = g.shape[2:]
    for r, level, image, ay, ax, count in _roi_operators_of(
        boxes, levels, input_shapes, spatial_scales, pooled, sampling_ratio, aligned, geometry
    ):
        rows, cols = _support(ay), _support(ax)
        grads[level][image, :, rows, cols] += (ay[:, rows].T @ g[r] @ ax[:, cols]) / count
    return grads


def roi_align_backward(
    grad_output,
    boxes,
    input_shape,
    spatial_scale=1.0,
    sampling_ratio=-1,
    aligned=False,
    geometry=np.float32,
):
    """Gradient ``[N, C, H, W]`` of :func:`roi_align` w.r.t. its input."""
    return multilevel_roi_align_backward(
        grad_output,
        boxes,
        None,
        [tuple(input_shape)],
        [spatial_scale],
        sampling_ratio,
        aligned,
        geometry,
    )[0]


def fpn_levels(boxes, k_min, k_max, canonical_scale=224, canonical_level=4, eps=1e-6):
    """FPN level of each box (Lin et al., eq. 1), as an index from 0 (= level ``k_min``):
    ``floor(k0 + log2(sqrt(area) / s0) + eps)`` clamped to ``[k_min, k_max]``. Computed in
    float32 like torchvision's ``LevelMapper``."""
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    s = np.sqrt(area)
    with np.errstate(divide="ignore", invalid="ignore"):
        lvl = np.floor(
            np.float32(canonical_level) + np.log2(s / np.float32(canonical_scale)) + np.float32(eps)
        )
    lvl = np.clip(np.nan_to_num(lvl, nan=k_min, neginf=k_min), k_min, k_max)
    return lvl.astype(np.int64) - int(k_min)


def fpn_scale(feature_size, image_size):
    """A level's spatial scale: ``2 ** round(log2(feature / image))`` (torchvision's rule)."""
    return 2.0 ** round(math.log2(float(feature_size) / float(image_size)))
