#pragma once
#include <ATen/core/Tensor.h>
namespace frcnn_fast {
void check_roi_align_inputs(
    const at::Tensor& input, const at::Tensor& boxes, double spatial_scale, int64_t pooled_height,
    int64_t pooled_width);
void check_multilevel_roi_align_inputs(
    at::TensorList inputs, const at::Tensor& boxes, const at::Tensor& levels,
    c10::ArrayRef<double> spatial_scales, int64_t pooled_height, int64_t pooled_width);
void check_roi_align_backward_inputs(
    const at::Tensor& grad, const at::Tensor& boxes, double spatial_scale, int64_t pooled_height,
    int64_t pooled_width, int64_t batch_size, int64_t channels, int64_t height, int64_t width);
void check_multilevel_roi_align_backward_inputs(
    const at::Tensor& grad, const at::Tensor& boxes, const at::Tensor& levels,
    c10::ArrayRef<double> spatial_scales, int64_t pooled_height, int64_t pooled_width,
    int64_t batch_size, int64_t channels, c10::ArrayRef<int64_t> heights,
    c10::ArrayRef<int64_t> widths);
}  // namespace frcnn_fast
