#pragma once

#include <ATen/ATen.h>

#include "large_output.h"

// Memory layout and gradient buffers of the RoI ops, the same on CPU and CUDA.

namespace frcnn_fast {

// NHWC kernels run when the input is channels-last and not also plain contiguous (a [N, C,
// 1, 1] map or C == 1 is both; the NCHW kernel is right for those). Outputs and gradients
// keep the layout the kernels ran in (frcnn_fast/ops/_roi.py channels_last mirrors this).
inline bool use_channels_last(const at::Tensor& input) {
  return !input.is_contiguous() && input.is_contiguous(at::MemoryFormat::ChannelsLast);
}

inline at::MemoryFormat memory_format_of(bool channels_last) {
  return channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

// A forward's [K, C, PH, PW] result for `boxes` on `input`, in the layout the kernels run in.
inline at::Tensor pooled_output(
    const at::Tensor& input, const at::Tensor& boxes, int64_t pooled_h, int64_t pooled_w,
    at::ScalarType dtype) {
  return empty_large_output(
      {boxes.size(0), input.size(1), pooled_h, pooled_w},
      input.options().dtype(dtype).memory_format(memory_format_of(use_channels_last(input))));
}

// A zeroed gradient map for a backward to sum into: float32 for float16/bfloat16 gradients
// (summed in float32 and rounded once by finish_grad_map; CUDA also has no half atomics), the
// gradient's own dtype otherwise. at::empty honours the memory format (at::zeros does not).
inline at::Tensor zeroed_grad_map(
    at::IntArrayRef sizes, const at::Tensor& grad, at::MemoryFormat format) {
  const auto dtype = grad.scalar_type();
  const bool half = dtype == at::kHalf || dtype == at::kBFloat16;
  return at::empty(sizes, grad.options().dtype(half ? at::kFloat : dtype).memory_format(format))
      .zero_();
}

// The summed gradient in the gradient's dtype: the one rounding of a half-type backward.
inline at::Tensor finish_grad_map(const at::Tensor& acc, at::ScalarType dtype) {
  return acc.scalar_type() == dtype ? acc : acc.to(dtype);
}

}  // namespace frcnn_fast
