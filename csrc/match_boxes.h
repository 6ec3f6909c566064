#pragma once
#include <ATen/core/Tensor.h>
#include <optional>
#include <tuple>

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

// A backend's match of checked inputs: (matches int64 [B, A], max_iou [B, A]).
using MatchBoxes = std::tuple<at::Tensor, at::Tensor> (*)(
    const MatchInputs& in, double high_threshold, double low_threshold, bool allow_low_quality);

// The two entries each backend registers, written once around its Match: the single-image op
// is the batched one with B = 1.
template <MatchBoxes Match>
struct MatchBoxesEntries {
  static std::tuple<at::Tensor, at::Tensor> match_boxes(
      const at::Tensor& gt_boxes, const at::Tensor& anchors, double high_threshold,
      double low_threshold, bool allow_low_quality_matches, bool validate) {
    const MatchInputs in = check_match_boxes_inputs(
        gt_boxes, std::nullopt, anchors, high_threshold, low_threshold, validate, false);
    auto out = Match(in, high_threshold, low_threshold, allow_low_quality_matches);
    return {std::get<0>(out).squeeze(0), std::get<1>(out).squeeze(0)};
  }

  static std::tuple<at::Tensor, at::Tensor> match_boxes_batched(
      const at::Tensor& gt_boxes, const std::optional<at::Tensor>& gt_counts,
      const at::Tensor& anchors, double high_threshold, double low_threshold,
      bool allow_low_quality_matches, bool validate) {
    const MatchInputs in = check_match_boxes_inputs(
        gt_boxes, gt_counts, anchors, high_threshold, low_threshold, validate, true);
    return Match(in, high_threshold, low_threshold, allow_low_quality_matches);
  }
};

}  // namespace frcnn_fast
