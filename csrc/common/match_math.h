#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "box_math.h"
#include "macros.h"

// Anchor matching shared by the CPU and CUDA kernels (match_boxes). The kernels make two passes
// over the anchors: the first finds each ground truth's best IoU, the second recomputes every
// IoU to pick each anchor's best ground truth and to test it against those bests with ==. That
// test is exact only because both passes (and both backends) compute the IoU with the same
// expression, no FMA, and round it the same way: keep every IoU of a match going through
// match_iou.

namespace frcnn_fast {

// The IoUs are compared as box_iou would return them: computed in the math type T, then rounded
// to the input dtype (a no-op for float and double). torchvision's Matcher run on box_iou's
// float16/bfloat16 matrix sees exactly these values, ties made by the rounding included.
template <typename scalar_t, typename T>
FRCNN_HOST_DEVICE T round_to_dtype(T v) {
  if (std::is_same<scalar_t, T>::value) {
    return v;
  }
  return static_cast<T>(static_cast<scalar_t>(v));
}

// IoU of ground truth g with anchor a, areas precomputed: the one expression both passes use.
template <typename scalar_t, typename T>
FRCNN_HOST_DEVICE T
match_iou(T gx1, T gy1, T gx2, T gy2, T garea, T ax1, T ay1, T ax2, T ay2, T aarea) {
  const T inter = box_intersection(gx1, gy1, gx2, gy2, ax1, ay1, ax2, ay2);
  return round_to_dtype<scalar_t>(iou_from_areas(inter, garea, aarea));
}

// A threshold as torch compares it with a tensor of the input dtype: rounded to that dtype
// (through float for the half types, as c10's conversions do), then widened to T exactly.
template <typename scalar_t, typename T>
inline T threshold_as_dtype(double t) {
  return static_cast<T>(static_cast<scalar_t>(t));
}

constexpr int64_t kBelowLowThreshold = -1;
constexpr int64_t kBetweenThresholds = -2;

// The final label of an anchor: its best ground truth, or -1 / -2 by its best IoU; an anchor
// that attains some ground truth's best (positive) IoU keeps its best ground truth regardless.
// `count` = 0 (no ground truth): every anchor is below the low threshold.
template <typename T>
FRCNN_HOST_DEVICE int64_t
match_label(T best, int64_t best_index, bool rescued, T low, T high, int64_t count) {
  if (count == 0) {
    return kBelowLowThreshold;
  }
  if (rescued) {
    return best_index;
  }
  if (best < low) {
    return kBelowLowThreshold;
  }
  if (best < high) {
    return kBetweenThresholds;
  }
  return best_index;
}

// The per-ground-truth maxima of the CUDA pass are kept as the bits of the IoU in a signed
// integer of its width: an IoU is >= 0 (or -0, whose bits are the most negative integer and so
// lose to every other value), so the integer order is the IoU order and atomicMax applies.
template <typename T>
struct IouBits {
  using type = typename std::conditional<sizeof(T) == 8, long long, int>::type;
};

template <typename T>
FRCNN_HOST_DEVICE typename IouBits<T>::type iou_to_bits(T v) {
  typename IouBits<T>::type bits;
  memcpy(&bits, &v, sizeof(T));
  return bits;
}

template <typename T>
FRCNN_HOST_DEVICE T iou_from_bits(typename IouBits<T>::type bits) {
  T v;
  memcpy(&v, &bits, sizeof(T));
  return v;
}

}  // namespace frcnn_fast
