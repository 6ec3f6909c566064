#pragma once
#include <ATen/core/Tensor.h>
namespace frcnn_fast {
void check_box_iou_inputs(const at::Tensor& boxes1, const at::Tensor& boxes2);
void check_box_iou_aligned_inputs(const at::Tensor& boxes1, const at::Tensor& boxes2);
}  // namespace frcnn_fast
