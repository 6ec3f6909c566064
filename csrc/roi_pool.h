#pragma once
#include <ATen/core/Tensor.h>
namespace frcnn_fast {
void check_roi_pool_inputs(
    const at::Tensor& input, const at::Tensor& boxes, double spatial_scale, int64_t pooled_height,
    int64_t pooled_width);
void check_roi_pool_backward_inputs(
    const at::Tensor& grad, const at::Tensor& boxes, const at::Tensor& argmax, int64_t batch_size,
    int64_t channels, int64_t height, int64_t width);
}  // namespace frcnn_fast
