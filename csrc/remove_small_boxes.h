#pragma once
#include <ATen/core/Tensor.h>
namespace frcnn_fast {
void check_remove_small_boxes_inputs(const at::Tensor& boxes, double min_size);
}
