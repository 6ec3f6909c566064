#pragma once
#include <ATen/core/Tensor.h>

#include <vector>
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

// A backend's RoIAlign over FPN levels (RoI k pooled from inputs[levels[k]]; an undefined
// `levels`: one level), and its backward, one gradient map per level. The single-map ops are
// the one-level case.
using RoiAlignForward = at::Tensor (*)(
    at::TensorList inputs, const at::Tensor& boxes, const at::Tensor& levels,
    c10::ArrayRef<double> spatial_scales, int64_t pooled_h, int64_t pooled_w,
    int64_t sampling_ratio, bool aligned);
using RoiAlignBackward = std::vector<at::Tensor> (*)(
    const at::Tensor& grad, const at::Tensor& boxes, const at::Tensor& levels,
    c10::ArrayRef<double> spatial_scales, int64_t pooled_h, int64_t pooled_w, int64_t batch_size,
    int64_t channels, c10::ArrayRef<int64_t> heights, c10::ArrayRef<int64_t> widths,
    int64_t sampling_ratio, bool aligned, bool channels_last, bool deterministic);

// The four entries each backend registers, written once: the op's input check, then the
// backend's Forward or Backward. `deterministic` reaches only the backward (the forward always
// is deterministic).
template <RoiAlignForward Forward, RoiAlignBackward Backward>
struct RoiAlignEntries {
  static at::Tensor roi_align(
      const at::Tensor& input, const at::Tensor& boxes, double spatial_scale, int64_t pooled_h,
      int64_t pooled_w, int64_t sampling_ratio, bool aligned, bool /*deterministic*/) {
    check_roi_align_inputs(input, boxes, spatial_scale, pooled_h, pooled_w);
    return Forward(
        {input}, boxes, at::Tensor(), {spatial_scale}, pooled_h, pooled_w, sampling_ratio, aligned);
  }

  static at::Tensor roi_align_backward(
      const at::Tensor& grad, const at::Tensor& boxes, double spatial_scale, int64_t pooled_h,
      int64_t pooled_w, int64_t batch_size, int64_t channels, int64_t height, int64_t width,
      int64_t sampling_ratio, bool aligned, bool channels_last, bool deterministic) {
    check_roi_align_backward_inputs(
        grad, boxes, spatial_scale, pooled_h, pooled_w, batch_size, channels, height, width);
    return Backward(
        grad, boxes, at::Tensor(), {spatial_scale}, pooled_h, pooled_w, batch_size, channels,
        {height}, {width}, sampling_ratio, aligned, channels_last, deterministic)[0];
  }

  static at::Tensor multilevel_roi_align(
      at::TensorList inputs, const at::Tensor& boxes, const at::Tensor& levels,
      c10::ArrayRef<double> spatial_scales, int64_t pooled_h, int64_t pooled_w,
      int64_t sampling_ratio, bool aligned, bool /*deterministic*/) {
    check_multilevel_roi_align_inputs(inputs, boxes, levels, spatial_scales, pooled_h, pooled_w);
    return Forward(
        inputs, boxes, levels, spatial_scales, pooled_h, pooled_w, sampling_ratio, aligned);
  }

  static std::vector<at::Tensor> multilevel_roi_align_backward(
      const at::Tensor& grad, const at::Tensor& boxes, const at::Tensor& levels,
      c10::ArrayRef<double> spatial_scales, int64_t pooled_h, int64_t pooled_w, int64_t batch_size,
      int64_t channels, c10::ArrayRef<int64_t> heights, c10::ArrayRef<int64_t> widths,
      int64_t sampling_ratio, bool aligned, bool channels_last, bool deterministic) {
    check_multilevel_roi_align_backward_inputs(
        grad, boxes, levels, spatial_scales, pooled_h, pooled_w, batch_size, channels, heights,
        widths);
    return Backward(
        grad, boxes, levels, spatial_scales, pooled_h, pooled_w, batch_size, channels, heights,
        widths, sampling_ratio, aligned, channels_last, deterministic);
  }
};

}  // namespace frcnn_fast
