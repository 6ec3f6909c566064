#pragma once

#include <cstdint>

#include "macros.h"

// The sizes and options of one RoI op call, handed to its kernels as one value instead of a
// dozen positional int64/bool arguments (which are easy to pass in the wrong order and the
// compiler cannot tell apart). Plain data, so CUDA kernels take it by value.

namespace frcnn_fast {

struct RoiParams {
  int64_t batch_size = 0;  // N of the feature map(s)
  int64_t channels = 0;    // C
  // H and W of the feature map (roi_pool; RoIAlign's levels carry their own sizes and scales).
  int64_t height = 0, width = 0;
  double spatial_scale = 1.0;
  int64_t pooled_h = 0, pooled_w = 0;  // output bins per RoI
  int64_t sampling_ratio = 0;          // RoIAlign only
  bool aligned = false;                // RoIAlign only
  bool channels_last = false;          // NHWC input, output and gradients

  FRCNN_HOST_DEVICE int64_t bins() const { return pooled_h * pooled_w; }
};

// The one place where an op's arguments become RoiParams, for CPU and CUDA alike.
inline RoiParams pool_params(
    int64_t batch_size, int64_t channels, int64_t height, int64_t width, double spatial_scale,
    int64_t pooled_h, int64_t pooled_w, bool channels_last) {
  return RoiParams{batch_size, channels, height, width, spatial_scale,
                   pooled_h,   pooled_w, 0,      false, channels_last};
}

inline RoiParams align_params(
    int64_t batch_size, int64_t channels, int64_t pooled_h, int64_t pooled_w,
    int64_t sampling_ratio, bool aligned, bool channels_last) {
  RoiParams p = pool_params(batch_size, channels, 0, 0, 1.0, pooled_h, pooled_w, channels_last);
  p.sampling_ratio = sampling_ratio;
  p.aligned = aligned;
  return p;
}

}  // namespace frcnn_fast
