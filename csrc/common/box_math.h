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

FRCNN_MATH_OVERLOADS(math_log, log)
FRCNN_MATH_OVERLOADS(math_exp, exp)

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

// Boxes are stored in the tensor's dtype S and computed in the math type T: loads and stores
// convert each coordinate.
template <typename To, typename From>
FRCNN_HOST_DEVICE void cast_box(const From* in, To* out) {
  for (int k = 0; k < 4; ++k) out[k] = static_cast<To>(in[k]);
}

template <typename T, typename S>
FRCNN_HOST_DEVICE void load_box(const S* p, T* box) {
  cast_box(p, box);
}

template <typename T, typename S>
FRCNN_HOST_DEVICE void store_box(const T* box, S* p) {
  cast_box(box, p);
}

// Clamp to [lo, hi], NaN passing through like np.clip.
template <typename T>
FRCNN_HOST_DEVICE T clamp_to(T v, T lo, T hi) {
  return v < lo ? lo : clamp_max(v, hi);
}

// A box clipped to the image [0, width] x [0, height], each coordinate on its own axis.
template <typename T>
FRCNN_HOST_DEVICE void clip_box(T* box, T height, T width) {
  box[0] = clamp_to(box[0], T(0), width);
  box[1] = clamp_to(box[1], T(0), height);
  box[2] = clamp_to(box[2], T(0), width);
  box[3] = clamp_to(box[3], T(0), height);
}

// A box moved by (dx, dy): a base anchor placed at a cell centre.
template <typename T>
FRCNN_HOST_DEVICE void shift_box(T* box, T dx, T dy) {
  box[0] += dx;
  box[1] += dy;
  box[2] += dx;
  box[3] += dy;
}

// ---- formats ---------------------------------------------------------------------------

enum BoxFormat : int { kXYXY = 0, kYXYX = 1, kXYWH = 2, kCXCYWH = 3 };

template <typename T>
FRCNN_HOST_DEVICE void set_box(T* out, T a, T b, T c, T d) {
  out[0] = a;
  out[1] = b;
  out[2] = c;
  out[3] = d;
}

template <typename T>
FRCNN_HOST_DEVICE void to_xyxy(int fmt, const T* in, T* out) {
  switch (fmt) {
    case kYXYX:
      set_box(out, in[1], in[0], in[3], in[2]);
      break;
    case kXYWH:
      set_box(out, in[0], in[1], in[0] + in[2], in[1] + in[3]);
      break;
    case kCXCYWH:
      set_box(
          out, in[0] - T(0.5) * in[2], in[1] - T(0.5) * in[3], in[0] + T(0.5) * in[2],
          in[1] + T(0.5) * in[3]);
      break;
    default:
      set_box(out, in[0], in[1], in[2], in[3]);
  }
}

template <typename T>
FRCNN_HOST_DEVICE void from_xyxy(int fmt, const T* in, T* out) {
  switch (fmt) {
    case kYXYX:  // its own inverse
      to_xyxy(fmt, in, out);
      break;
    case kXYWH:
      set_box(out, in[0], in[1], in[2] - in[0], in[3] - in[1]);
      break;
    case kCXCYWH:
      set_box(
          out, T(0.5) * (in[0] + in[2]), T(0.5) * (in[1] + in[3]), in[2] - in[0], in[3] - in[1]);
      break;
    default:
      set_box(out, in[0], in[1], in[2], in[3]);
  }
}

// ---- Faster R-CNN box coding -----------------------------------------------------------

template <typename T>
struct BoxWeights {
  T wx, wy, ww, wh;
};

// A box as width, height and centre: the form box coding works in.
template <typename T>
struct CentreForm {
  T w, h, cx, cy;
};

template <typename T>
FRCNN_HOST_DEVICE CentreForm<T> centre_form(const T* box) {
  const T w = box[2] - box[0];
  const T h = box[3] - box[1];
  return {w, h, box[0] + T(0.5) * w, box[1] + T(0.5) * h};
}

// Deltas that move `ref` onto `tgt`.
template <typename T>
FRCNN_HOST_DEVICE void encode_box(const T* ref, const T* tgt, BoxWeights<T> wt, T* out) {
  const CentreForm<T> r = centre_form(ref);
  const CentreForm<T> t = centre_form(tgt);
  out[0] = wt.wx * (t.cx - r.cx) / r.w;
  out[1] = wt.wy * (t.cy - r.cy) / r.h;
  out[2] = wt.ww * math_log(t.w / r.w);
  out[3] = wt.wh * math_log(t.h / r.h);
}

// Box obtained by applying `delta` to the reference box `r`. dw, dh are capped at `clamp` so
// that exp() cannot overflow on an untrained head. A reference shared by K deltas (one per
// class) is put in centre form once.
template <typename T>
FRCNN_HOST_DEVICE void decode_box(
    const T* delta, CentreForm<T> r, BoxWeights<T> wt, T clamp, T* out) {
  const T dx = delta[0] / wt.wx;
  const T dy = delta[1] / wt.wy;
  const T dw = clamp_max(delta[2] / wt.ww, clamp);
  const T dh = clamp_max(delta[3] / wt.wh, clamp);
  const T cx = dx * r.w + r.cx;
  const T cy = dy * r.h + r.cy;
  const T w = math_exp(dw) * r.w;
  const T h = math_exp(dh) * r.h;
  out[0] = cx - T(0.5) * w;
  out[1] = cy - T(0.5) * h;
  out[2] = cx + T(0.5) * w;
  out[3] = cy + T(0.5) * h;
}

template <typename T>
FRCNN_HOST_DEVICE void decode_box(const T* delta, const T* ref, BoxWeights<T> wt, T clamp, T* out) {
  decode_box(delta, centre_form(ref), wt, clamp, out);
}

// Centre of feature-map cell `index` (a row or a column) in image coordinates.
template <typename T>
FRCNN_HOST_DEVICE T cell_centre(int64_t index, T offset, T stride) {
  return (static_cast<T>(index) + offset) * stride;
}

}  // namespace frcnn_fast
