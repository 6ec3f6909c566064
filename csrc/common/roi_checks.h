#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <cmath>

#include "checks.h"

// Input checks shared by RoI pooling and RoIAlign (forward and backward), called by the ops'
// own checks in csrc/roi_pool.cpp and csrc/roi_align.cpp, which every CPU and CUDA kernel entry
// starts with. The batch index of each RoI is a value, so it is checked where the values are
// read (common/roi_index.h).

namespace frcnn_fast {

inline void check_feature_map(const at::Tensor& input, const char* name) {
  TORCH_CHECK(input.defined(), name, " must be a defined tensor");
  TORCH_CHECK(input.dim() == 4, name, " must have shape [N, C, H, W], got ", input.sizes());
  check_floating(input, name);
}

inline void check_rois_shape(const at::Tensor& boxes) {
  TORCH_CHECK(boxes.defined(), "boxes must be a defined tensor");
  TORCH_CHECK(
      boxes.dim() == 2 && boxes.size(1) == 5,
      "boxes must have shape [K, 5] (batch_index, x1, y1, x2, y2), got ", boxes.sizes());
}

inline void check_rois(const at::Tensor& boxes, const at::Tensor& input, const char* input_name) {
  check_rois_shape(boxes);
  check_floating(boxes, "boxes");
  check_same_dtype_device(input, input_name, boxes, "boxes");
}

inline void check_output_size(int64_t pooled_height, int64_t pooled_width) {
  TORCH_CHECK(
      pooled_height > 0 && pooled_width > 0, "output_size must be positive, got (", pooled_height,
      ", ", pooled_width, ")");
}

inline void check_spatial_scale(double spatial_scale, const char* name = "spatial_scale") {
  TORCH_CHECK(
      std::isfinite(spatial_scale) && spatial_scale > 0, name, " must be positive and finite, got ",
      spatial_scale);
}

// A forward on one feature map: roi_pool, roi_pool_inference and roi_align.
inline void check_single_map_inputs(
    const at::Tensor& input, const at::Tensor& boxes, double spatial_scale, int64_t pooled_height,
    int64_t pooled_width) {
  check_feature_map(input, "input");
  check_rois(boxes, input, "input");
  check_output_size(pooled_height, pooled_width);
  check_spatial_scale(spatial_scale);
}

// The gradient of a pooled map: [K, C, PH, PW] matching boxes and the pooled size.
inline void check_pooled_grad(
    const at::Tensor& grad, const at::Tensor& boxes, int64_t channels, int64_t pooled_height,
    int64_t pooled_width) {
  TORCH_CHECK(
      grad.defined() && grad.dim() == 4, "grad must have shape [K, C, PH, PW], got ", grad.sizes());
  check_floating(grad, "grad");
  TORCH_CHECK(
      grad.size(0) == boxes.size(0) && grad.size(1) == channels && grad.size(2) == pooled_height &&
          grad.size(3) == pooled_width,
      "grad must have shape [", boxes.size(0), ", ", channels, ", ", pooled_height, ", ",
      pooled_width, "], got ", grad.sizes());
  check_same_dtype_device(grad, "grad", boxes, "boxes");
}

inline void check_input_shape(int64_t batch_size, int64_t channels, int64_t height, int64_t width) {
  TORCH_CHECK(
      batch_size >= 0 && channels >= 0 && height >= 0 && width >= 0,
      "input shape must be non-negative, got [", batch_size, ", ", channels, ", ", height, ", ",
      width, "]");
}

}  // namespace frcnn_fast
