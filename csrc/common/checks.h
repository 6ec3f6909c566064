#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

// Input checks shared by every op. Messages name the argument and the offending value, so a
// user sees "boxes1 must have shape [N, 4], got [10, 3]" instead of a crash.

namespace frcnn_fast {

inline void check_floating(const at::Tensor& t, const char* name) {
  const auto dtype = t.scalar_type();
  TORCH_CHECK(
      dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf || dtype == at::kBFloat16,
      name, " must be float32, float64, float16 or bfloat16, got ", dtype);
}

// boxes[..., 4] (any leading dims) of a floating dtype.
inline void check_boxes(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.defined(), name, " must be a defined tensor");
  TORCH_CHECK(t.dim() >= 1 && t.size(-1) == 4, name, " must have shape [..., 4], got ", t.sizes());
  check_floating(t, name);
}

// boxes[N, 4].
inline void check_boxes_2d(const at::Tensor& t, const char* name) {
  check_boxes(t, name);
  TORCH_CHECK(t.dim() == 2, name, " must have shape [N, 4], got ", t.sizes());
}

inline void check_same_dtype_device(
    const at::Tensor& a, const char* a_name, const at::Tensor& b, const char* b_name) {
  TORCH_CHECK(
      a.scalar_type() == b.scalar_type(), a_name, " and ", b_name,
      " must have the same dtype, got ", a.scalar_type(), " and ", b.scalar_type());
  TORCH_CHECK(
      a.device() == b.device(), a_name, " and ", b_name, " must be on the same device, got ",
      a.device(), " and ", b.device());
}

inline void check_same_shape(
    const at::Tensor& a, const char* a_name, const at::Tensor& b, const char* b_name) {
  TORCH_CHECK(
      a.sizes() == b.sizes(), a_name, " and ", b_name, " must have the same shape, got ", a.sizes(),
      " and ", b.sizes());
}

}  // namespace frcnn_fast
