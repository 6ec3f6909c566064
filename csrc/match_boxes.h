#pragma once
#include <ATen/core/Tensor.h>
#include <optional>

namespace frcnn_fast {

// The inputs of a match, checked and laid out for the kernels: ground truths as [B, G, 4]
// (B = 1 for the single-image op), counts as int64 [B] (undefined: all G rows are real), both
// contiguous, on the anchors' device.
struct MatchInputs {
  at::Tensor gt_boxes;
  at::Tensor gt_counts;
  at::Tensor anchors;
};

// Shape, dtype, device and threshold checks; with `validate` also the values (finite ground
// truth coordinates in the real rows, counts in [0, G]), which on CUDA costs one
// device-to-host sync.
MatchInputs check_match_boxes_inputs(
    const at::Tensor& gt_boxes, const std::optional<at::Tensor>& gt_counts,
    const at::Tensor& anchors, double high_threshold, double low_threshold, bool validate,
    bool batched);

}  // namespace frcnn_fast
