#pragma once
#include <ATen/core/Tensor.h>
namespace frcnn_fast {
void check_box_area_inputs(const at::Tensor& boxes);
}
