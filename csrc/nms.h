#pragma once
#include <ATen/core/Tensor.h>

#include <optional>

namespace frcnn_fast {
void check_nms_inputs(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold);
void check_batched_nms_inputs(
    const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
    double iou_threshold);
void check_nms_padded_args(int64_t max_output, std::optional<double> score_threshold);
}  // namespace frcnn_fast
