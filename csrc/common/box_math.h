#pragma once

#include <cmath>
#include <cstdint>

#include "macros.h"

// Box geometry shared by the CPU and CUDA kernels. Boxes are (x1, y1, x2, y2) in continuous
// coordinates, width = x2 - x1. T is the math type (float for half types, see opmath_type).

namespace frcnn_fast {

// max(v, 0) and min(v, hi) that let NaN through, as the NumPy reference does: a NaN box must
// stay visible downstream rather than turn into a valid-looking one. (IoU still maps a NaN
// union to 0, see iou_from_areas.)
template <typename T>
FRCNN_HOST_DEVICE T clamp_min0(T v) {
  return v < T(0) ? T(0) : v;
}

template <typename T>
FRCNN_HOST_DEVICE T clamp_max(T v, T hi) {
  return v > hi ? hi : v;
}

template <typename T>
FRCNN_HOST_DEVICE T min2(T a, T b) {
  return a < b ? a : b;
}

template <typename T>
FRCNN_HOST_DEVICE T max2(T a, T b) {
  return a > b ? a : b;
}

FRCNN_HOST_DEVICE float math_log(float v) {
  return logf(v);
}
FRCNN_HOST_DEVICE double math_log(double v) {
  return log(v);
}
FRCNN_HOST_DEVICE float math_exp(float v) {
  return expf(v);
}
FRCNN_HOST_DEVICE double math_exp(double v) {
  return exp(v);
}

// Inverted boxes have area 0, never a negative one.
template <typename T>
FRCNN_HOST_DEVICE T box_area(T x1, T y1, T x2, T y2) {
  return clamp_min0(x2 - x1) * clamp_min0(y2 - y1);
}

template <typename T>
FRCNN_HOST_DEVICE T box_intersection(T ax1, T ay1, T ax2, T ay2, T bx1, T by1, T bx2, T by2) {
  const T w = min2(ax2, bx2) - max2(ax1, bx1);
  const T h = min2(ay2, by2) - max2(ay1, by1);
  return clamp_min0(w) * clamp_min0(h);
}

// IoU is defined as 0 when the union is empty (two zero-area boxes): torchvision returns NaN
// there, which poisons a max over IoUs in anchor matching.
// Written as two selects around an unconditional division so that the CPU loop vectorises.
template <typename T>
FRCNN_HOST_DEVICE T iou_from_areas(T inter, T area_a, T area_b) {
  const T uni = area_a + area_b - inter;
  const T ratio = inter / (uni > T(0) ? uni : T(1));
  return uni > T(0) ? ratio : T(0);
}

template <typename T>
FRCNN_HOST_DEVICE T box_iou(const T* a, const T* b) {
  const T inter = box_intersection(a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]);
  return iou_from_areas(inter, box_area(a[0], a[1], a[2], a[3]), box_area(b[0], b[1], b[2], b[3]));
}

// Boxes are stored in the tensor's dtype and computed in the math type T.
template <typename T, typename S>
FRCNN_HOST_DEVICE void load_box(const S* p, T* box) {
  box[0] = static_cast<T>(p[0]);
  box[1] = static_cast<T>(p[1]);
  box[2] = static_cast<T>(p[2]);
  box[3] = static_cast<T>(p[3]);
}

template <typename T, typename S>
FRCNN_HOST_DEVICE void store_box(const T* box, S* p) {
  p[0] = static_cast<S>(box[0]);
  p[1] = static_cast<S>(box[1]);
  p[2] = static_cast<S>(box[2]);
  p[3] = static_cast<S>(box[3]);
}

// ---- formats ---------------------------------------------------------------------------

enum BoxFormat : int { kXYXY = 0, kYXYX = 1, kXYWH = 2, kCXCYWH = 3 };

template <typename T>
FRCNN_HOST_DEVICE void to_xyxy(int fmt, const T* in, T* out) {
  switch (fmt) {
    case kYXYX:
      out[0] = in[1];
      out[1] = in[0];
      out[2] = in[3];
      out[3] = in[2];
      break;
    case kXYWH:
      out[0] = in[0];
      out[1] = in[1];
      out[2] = in[0] + in[2];
      out[3] = in[1] + in[3];
      break;
    case kCXCYWH:
      out[0] = in[0] - T(0.5) * in[2];
      out[1] = in[1] - T(0.5) * in[3];
      out[2] = in[0] + T(0.5) * in[2];
      out[3] = in[1] + T(0.5) * in[3];
      break;
    default:
      out[0] = in[0];
      out[1] = in[1];
      out[2] = in[2];
      out[3] = in[3];
  }
}

template <typename T>
FRCNN_HOST_DEVICE void from_xyxy(int fmt, const T* in, T* out) {
  switch (fmt) {
    case kYXYX:
      out[0] = in[1];
      out[1] = in[0];
      out[2] = in[3];
      out[3] = in[2];
      break;
    case kXYWH:
      out[0] = in[0];
      out[1] = in[1];
      out[2] = in[2] - in[0];
      out[3] = in[3] - in[1];
      break;
    case kCXCYWH:
      out[0] = T(0.5) * (in[0] + in[2]);
      out[1] = T(0.5) * (in[1] + in[3]);
      out[2] = in[2] - in[0];
      out[3] = in[3] - in[1];
      break;
    default:
      out[0] = in[0];
      out[1] = in[1];
      out[2] = in[2];
      out[3] = in[3];
  }
}

// ---- Faster R-CNN box coding -----------------------------------------------------------

template <typename T>
struct BoxWeights {
  T wx, wy, ww, wh;
};

// Deltas that move `ref` onto `tgt`.
template <typename T>
FRCNN_HOST_DEVICE void encode_box(const T* ref, const T* tgt, BoxWeights<T> wt, T* out) {
  const T rw = ref[2] - ref[0];
  const T rh = ref[3] - ref[1];
  const T rcx = ref[0] + T(0.5) * rw;
  const T rcy = ref[1] + T(0.5) * rh;
  const T tw = tgt[2] - tgt[0];
  const T th = tgt[3] - tgt[1];
  const T tcx = tgt[0] + T(0.5) * tw;
  const T tcy = tgt[1] + T(0.5) * th;
  out[0] = wt.wx * (tcx - rcx) / rw;
  out[1] = wt.wy * (tcy - rcy) / rh;
  out[2] = wt.ww * math_log(tw / rw);
  out[3] = wt.wh * math_log(th / rh);
}

// Box obtained by applying `delta` to `ref`. dw, dh are capped at `clamp` so that exp()
// cannot overflow on an untrained head.
template <typename T>
FRCNN_HOST_DEVICE void decode_box(const T* delta, const T* ref, BoxWeights<T> wt, T clamp, T* out) {
  const T rw = ref[2] - ref[0];
  const T rh = ref[3] - ref[1];
  const T rcx = ref[0] + T(0.5) * rw;
  const T rcy = ref[1] + T(0.5) * rh;
  const T dx = delta[0] / wt.wx;
  const T dy = delta[1] / wt.wy;
  const T dw = clamp_max(delta[2] / wt.ww, clamp);
  const T dh = clamp_max(delta[3] / wt.wh, clamp);
  const T cx = dx * rw + rcx;
  const T cy = dy * rh + rcy;
  const T w = math_exp(dw) * rw;
  const T h = math_exp(dh) * rh;
  out[0] = cx - T(0.5) * w;
  out[1] = cy - T(0.5) * h;
  out[2] = cx + T(0.5) * w;
  out[3] = cy + T(0.5) * h;
}

// Centre of feature-map cell `index` (a row or a column) in image coordinates.
template <typename T>
FRCNN_HOST_DEVICE T cell_centre(int64_t index, T offset, T stride) {
  return (static_cast<T>(index) + offset) * stride;
}

// Clamp to [lo, hi], NaN passing through like np.clip.
template <typename T>
FRCNN_HOST_DEVICE T clamp_to(T v, T lo, T hi) {
  return v < lo ? lo : clamp_max(v, hi);
}

}  // namespace frcnn_fast
