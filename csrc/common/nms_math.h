#pragma once

#include <cmath>
#include <limits>

#include "box_math.h"

// NMS pieces shared by the CPU and CUDA kernels (and mirrored by reference/nms.py).

namespace frcnn_fast {

// The threshold in the IoU's math type T such that, for every T value v,
// `v > threshold_in<T>(t)` equals the exact comparison `double(v) > t`: the largest T <= t.
// (Rounding t to nearest instead would let an IoU just below t count as above it.) The
// comparison itself then costs one T compare in the kernels' inner loops.
template <typename T>
inline T threshold_in(double t) {
  T v = static_cast<T>(t);
  if (static_cast<double>(v) > t) {
    v = std::nextafter(v, -std::numeric_limits<T>::infinity());
  }
  return v;
}

// A box takes part in suppression only when all its coordinates are finite; any other box is
// kept wherever its score ranks it and suppresses nothing. (A box of area 0 behaves the same
// way by itself: its IoU with anything is 0.)
template <typename T>
FRCNN_HOST_DEVICE bool box_is_finite(T x1, T y1, T x2, T y2) {
  // x - x is 0 for finite x and NaN for NaN and +-inf.
  return (x1 - x1) == T(0) && (y1 - y1) == T(0) && (x2 - x2) == T(0) && (y2 - y2) == T(0);
}

}  // namespace frcnn_fast
