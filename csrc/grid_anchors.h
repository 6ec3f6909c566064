#pragma once
#include <ATen/core/Tensor.h>
namespace frcnn_fast {
void check_grid_anchors_inputs(
    const at::Tensor& base_anchors, int64_t height, int64_t width, double stride_y, double stride_x,
    double offset);
}
