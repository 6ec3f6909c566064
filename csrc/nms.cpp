#include "nms.h"

#include <cmath>

#include "common/checks.h"
#include "common/library.h"
#include "common/macros.h"

namespace frcnn_fast {

void check_nms_inputs(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  check_boxes_2d(boxes, "boxes");
  TORCH_CHECK(scores.defined(), "scores must be a defined tensor");
  TORCH_CHECK(
      scores.dim() == 1 && scores.size(0) == boxes.size(0),
      "scores must have shape [N] with N = boxes.size(0) = ", boxes.size(0), ", got ",
      scores.sizes());
  check_floating(scores, "scores");
  check_same_dtype_device(boxes, "boxes", scores, "scores");
  // Written so that NaN fails too.
  TORCH_CHECK(
      iou_threshold >= 0.0 && iou_threshold <= 1.0, "iou_threshold must be in [0, 1], got ",
      iou_threshold);
}

void check_batched_nms_inputs(
    const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
    double iou_threshold) {
  check_nms_inputs(boxes, scores, iou_threshold);
  TORCH_CHECK(idxs.defined(), "idxs must be a defined tensor");
  TORCH_CHECK(
      idxs.dim() == 1 && idxs.size(0) == boxes.size(0),
      "idxs must have shape [N] with N = boxes.size(0) = ", boxes.size(0), ", got ", idxs.sizes());
  TORCH_CHECK(
      at::isIntegralType(idxs.scalar_type(), /*includeBool=*/false),
      "idxs must be an integer tensor, got ", idxs.scalar_type());
  TORCH_CHECK(
      idxs.device() == boxes.device(), "idxs and boxes must be on the same device, got ",
      idxs.device(), " and ", boxes.device());
}

void check_nms_padded_args(int64_t max_output, std::optional<double> score_threshold) {
  TORCH_CHECK(max_output >= 0, "max_output must be >= 0, got ", max_output);
  TORCH_CHECK(
      !score_threshold.has_value() || !std::isnan(*score_threshold),
      "score_threshold must not be NaN");
}

// nms and batched_nms return a data-dependent number of indices (the fake kernels give it a
// dynamic size). The padded forms return a fixed [max_output] int64 tensor padded with -1 and a
// 0-d int64 count, so they run without a device-to-host sync (CUDA graphs, torch.compile).
TORCH_LIBRARY_FRAGMENT(FRCNN_FAST_LIBRARY, m) {
  define_op(m, "nms(Tensor boxes, Tensor scores, float iou_threshold) -> Tensor");
  define_op(
      m, "batched_nms(Tensor boxes, Tensor scores, Tensor idxs, float iou_threshold) -> Tensor");
  define_op(
      m,
      "nms_padded(Tensor boxes, Tensor scores, float iou_threshold, int max_output, "
      "float? score_threshold=None) -> (Tensor, Tensor)");
  define_op(
      m,
      "batched_nms_padded(Tensor boxes, Tensor scores, Tensor idxs, float iou_threshold, "
      "int max_output, float? score_threshold=None) -> (Tensor, Tensor)");
}

}  // namespace frcnn_fast
