#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/DeviceGuard.h>

#include <tuple>

#include "common/roi_layout.h"
namespace frcnn_fast {
void check_roi_pool_inputs(
    const at::Tensor& input, const at::Tensor& boxes, double spatial_scale, int64_t pooled_height,
    int64_t pooled_width);
void check_roi_pool_backward_inputs(
    const at::Tensor& grad, const at::Tensor& boxes, const at::Tensor& argmax, int64_t batch_size,
    int64_t channels, int64_t height, int64_t width);
void check_roi_pool_backward_recompute_inputs(
    const at::Tensor& grad, const at::Tensor& input, const at::Tensor& boxes, double spatial_scale);

// A backend's forward: pools `boxes` on `input` into `out` and, unless `argmax` is undefined,
// each bin's max cell into `argmax`.
using RoiPoolForward = void (*)(
    const at::Tensor& input, const at::Tensor& boxes, double spatial_scale, int64_t pooled_h,
    int64_t pooled_w, const at::Tensor& out, const at::Tensor& argmax);

// The forward entries each backend registers, written once around its Forward: with the argmax
// the backward needs, and without it (no gradient wanted: nothing is computed or stored for it).
template <RoiPoolForward Forward>
struct RoiPoolEntries {
  static std::tuple<at::Tensor, at::Tensor> roi_pool(
      const at::Tensor& input, const at::Tensor& boxes, double spatial_scale, int64_t pooled_h,
      int64_t pooled_w, bool /*deterministic: the forward always is*/) {
    check_roi_pool_inputs(input, boxes, spatial_scale, pooled_h, pooled_w);
    const c10::DeviceGuard guard(input.device());
    at::Tensor out = pooled_output(input, boxes, pooled_h, pooled_w, input.scalar_type());
    at::Tensor argmax = pooled_output(input, boxes, pooled_h, pooled_w, at::kLong);
    Forward(input, boxes, spatial_scale, pooled_h, pooled_w, out, argmax);
    return {out, argmax};
  }

  static at::Tensor roi_pool_inference(
      const at::Tensor& input, const at::Tensor& boxes, double spatial_scale, int64_t pooled_h,
      int64_t pooled_w) {
    check_roi_pool_inputs(input, boxes, spatial_scale, pooled_h, pooled_w);
    const c10::DeviceGuard guard(input.device());
    at::Tensor out = pooled_output(input, boxes, pooled_h, pooled_w, input.scalar_type());
    Forward(input, boxes, spatial_scale, pooled_h, pooled_w, out, at::Tensor());
    return out;
  }
};

}  // namespace frcnn_fast
