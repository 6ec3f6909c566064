#pragma once
#include <ATen/core/Tensor.h>
namespace frcnn_fast {
void check_clip_boxes_inputs(const at::Tensor& boxes, double height, double width);
}
