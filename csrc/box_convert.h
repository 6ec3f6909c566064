#pragma once
#include <ATen/core/Tensor.h>
#include <string>
namespace frcnn_fast {
// Returns the BoxFormat codes of (in_fmt, out_fmt) after checking all inputs.
std::pair<int, int> check_box_convert_inputs(
    const at::Tensor& boxes, const std::string& in_fmt, const std::string& out_fmt);
}  // namespace frcnn_fast
