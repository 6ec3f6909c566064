#pragma once

#include <cmath>
#include <cstdint>

#include "macros.h"

// Per-RoI and per-sample geometry of RoI pooling (Fast R-CNN) and RoIAlign (Mask R-CNN),
// shared by the CPU and CUDA kernels and mirrored by reference/roi_pool.py, roi_align.py.
// G is the geometry type: float for float32/float16/bfloat16 inputs, double for float64. The
// expressions keep torchvision's evaluation order so that bin edges, which go through
// floor/ceil/round, land on the same integers as torchvision's kernels.

namespace frcnn_fast {

// Largest adaptive sampling grid per axis. torchvision has no cap, but a box that needs more
// than this many samples per bin and axis would take hours; the cap only keeps a garbage box
// (1e30 px) from turning into an endless loop or an out-of-range int conversion.
constexpr int64_t kMaxSamplingGrid = 1024;
// Pooled boxes are clamped to +-2^40 px before integer conversion (same reason).
constexpr double kMaxRoiCoord = 1099511627776.0;

FRCNN_MATH_OVERLOADS(math_floor, floor)
FRCNN_MATH_OVERLOADS(math_ceil, ceil)
// C round(): halves go away from zero (np.round would go to even).
FRCNN_MATH_OVERLOADS(math_round, round)

template <typename G>
FRCNN_HOST_DEVICE bool all_finite4(G a, G b, G c, G d) {
  // x - x is 0 for finite x and NaN for inf/NaN; one test covers all four.
  const G s = (a - a) + (b - b) + (c - c) + (d - d);
  return s == G(0);
}

// Integer conversion that cannot overflow: NaN and huge values clamp to +-kMaxRoiCoord.
template <typename G>
FRCNN_HOST_DEVICE int64_t clamped_int(G v) {
  const G hi = static_cast<G>(kMaxRoiCoord);
  if (!(v > -hi)) return -static_cast<int64_t>(kMaxRoiCoord);
  if (!(v < hi)) return static_cast<int64_t>(kMaxRoiCoord);
  return static_cast<int64_t>(v);
}

// ---- RoI pooling ------------------------------------------------------------------------

// The RoI on the feature map, in whole cells: start = round(coord * scale), size >= 1.
struct PoolRoi {
  int64_t x_start, y_start, width, height;
  bool valid;  // false when a coordinate is not finite: every bin is then empty
};

template <typename G>
FRCNN_HOST_DEVICE PoolRoi pool_roi(G x1, G y1, G x2, G y2, G scale) {
  PoolRoi r;
  const G sx1 = x1 * scale, sy1 = y1 * scale, sx2 = x2 * scale, sy2 = y2 * scale;
  r.valid = all_finite4(sx1, sy1, sx2, sy2);
  r.x_start = clamped_int(math_round(sx1));
  r.y_start = clamped_int(math_round(sy1));
  const int64_t x_end = clamped_int(math_round(sx2));
  const int64_t y_end = clamped_int(math_round(sy2));
  r.width = x_end - r.x_start + 1 > 1 ? x_end - r.x_start + 1 : 1;
  r.height = y_end - r.y_start + 1 > 1 ? y_end - r.y_start + 1 : 1;
  return r;
}

// Half-open cell range [begin, end) of bin `index` of `bins` along an axis of `extent` cells,
// clipped to [0, limit].
struct CellRange {
  int64_t begin, end;
};

template <typename G>
FRCNN_HOST_DEVICE CellRange
pool_bin(int64_t index, int64_t bins, int64_t roi_start, int64_t roi_size, int64_t limit) {
  const G bin = static_cast<G>(roi_size) / static_cast<G>(bins);
  int64_t begin = clamped_int(math_floor(static_cast<G>(index) * bin)) + roi_start;
  int64_t end = clamped_int(math_ceil(static_cast<G>(index + 1) * bin)) + roi_start;
  begin = begin < 0 ? 0 : (begin > limit ? limit : begin);
  end = end < 0 ? 0 : (end > limit ? limit : end);
  return {begin, end};
}

// ---- RoIAlign ---------------------------------------------------------------------------

// The RoI in feature-map coordinates and its sampling grid.
template <typename G>
struct AlignRoi {
  G x_start, y_start;
  G bin_w, bin_h;
  int64_t grid_w, grid_h;  // samples per bin and axis (0 for an empty/invalid RoI)
  G count;                 // what each bin's sum is divided by: max(grid_h * grid_w, 1)
};

template <typename G>
FRCNN_HOST_DEVICE int64_t sampling_grid(G roi_size, int64_t pooled, int64_t sampling_ratio) {
  if (sampling_ratio > 0) return sampling_ratio;
  const G g = math_ceil(roi_size / static_cast<G>(pooled));
  // An inverted aligned box has a negative size: no samples (its bins average to 0).
  if (!(g > G(0))) return 0;
  return g < static_cast<G>(kMaxSamplingGrid) ? static_cast<int64_t>(g) : kMaxSamplingGrid;
}

template <typename G>
FRCNN_HOST_DEVICE AlignRoi<G> align_roi(
    G x1, G y1, G x2, G y2, G scale, int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio,
    bool aligned) {
  AlignRoi<G> r;
  const G offset = aligned ? G(0.5) : G(0);
  r.x_start = x1 * scale - offset;
  r.y_start = y1 * scale - offset;
  const G x_end = x2 * scale - offset;
  const G y_end = y2 * scale - offset;
  G roi_w = x_end - r.x_start;
  G roi_h = y_end - r.y_start;
  if (!aligned) {
    // Legacy behaviour (Detectron): a box is at least one cell wide.
    roi_w = roi_w > G(1) ? roi_w : G(1);
    roi_h = roi_h > G(1) ? roi_h : G(1);
  }
  r.bin_w = roi_w / static_cast<G>(pooled_w);
  r.bin_h = roi_h / static_cast<G>(pooled_h);
  const bool valid = all_finite4(r.x_start, r.y_start, x_end, y_end);
  r.grid_h = valid ? sampling_grid(roi_h, pooled_h, sampling_ratio) : 0;
  r.grid_w = valid ? sampling_grid(roi_w, pooled_w, sampling_ratio) : 0;
  const int64_t n = r.grid_h * r.grid_w;
  r.count = static_cast<G>(n > 1 ? n : 1);
  return r;
}

// Position of sample `i` of `grid` in bin `bin_index` along one axis.
template <typename G>
FRCNN_HOST_DEVICE G sample_coord(G start, G bin, int64_t bin_index, int64_t i, int64_t grid) {
  return start + static_cast<G>(bin_index) * bin +
      static_cast<G>(static_cast<float>(i) + 0.5f) * bin / static_cast<G>(grid);
}

// One axis of a bilinear sample: the two neighbouring cells and their weights. A sample
// outside [-1, size] contributes nothing (valid = false); below 0 it clamps to cell 0; at or
// past the last cell it clamps to the last cell.
template <typename G>
struct AxisSample {
  int64_t low, high;
  G w_low, w_high;
  bool valid;
};

template <typename G>
FRCNN_HOST_DEVICE AxisSample<G> axis_sample(G v, int64_t size) {
  AxisSample<G> s;
  s.valid = !(v < G(-1) || v > static_cast<G>(size));
  if (!s.valid) {
    s.low = s.high = 0;
    s.w_low = s.w_high = G(0);
    return s;
  }
  if (v <= G(0)) v = G(0);
  s.low = static_cast<int64_t>(v);
  if (s.low >= size - 1) {
    s.low = s.high = size - 1;
    v = static_cast<G>(s.low);
  } else {
    s.high = s.low + 1;
  }
  const G l = v - static_cast<G>(s.low);
  s.w_high = l;
  s.w_low = G(1) - l;
  return s;
}

}  // namespace frcnn_fast
