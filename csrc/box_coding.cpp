#include "box_coding.h"

#include <cmath>

#include "common/checks.h"
#include "common/library.h"
#include "common/macros.h"

namespace frcnn_fast {

namespace {

void check_weights(c10::ArrayRef<double> weights) {
  TORCH_CHECK(
      weights.size() == 4, "weights must have 4 entries (wx, wy, ww, wh), got ", weights.size());
  for (double w : weights) {
    TORCH_CHECK(std::isfinite(w) && w != 0, "weights must be finite and non-zero, got ", weights);
  }
}

}  // namespace

void check_encode_boxes_inputs(
    const at::Tensor& reference_boxes, const at::Tensor& target_boxes,
    c10::ArrayRef<double> weights) {
  check_boxes(reference_boxes, "reference_boxes");
  check_boxes(target_boxes, "target_boxes");
  check_same_dtype_device(reference_boxes, "reference_boxes", target_boxes, "target_boxes");
  check_same_shape(reference_boxes, "reference_boxes", target_boxes, "target_boxes");
  check_weights(weights);
}

void check_decode_boxes_inputs(
    const at::Tensor& deltas, const at::Tensor& reference_boxes, c10::ArrayRef<double> weights,
    double clamp) {
  check_boxes_2d(reference_boxes, "reference_boxes");
  TORCH_CHECK(deltas.defined(), "deltas must be a defined tensor");
  TORCH_CHECK(
      deltas.dim() == 2 && deltas.size(1) % 4 == 0 && deltas.size(0) == reference_boxes.size(0),
      "deltas must have shape [N, 4 * K] with N = reference_boxes.size(0) = ",
      reference_boxes.size(0), ", got ", deltas.sizes());
  check_floating(deltas, "deltas");
  check_same_dtype_device(deltas, "deltas", reference_boxes, "reference_boxes");
  check_weights(weights);
  TORCH_CHECK(!std::isnan(clamp), "clamp must not be NaN");
}

TORCH_LIBRARY_FRAGMENT(FRCNN_FAST_LIBRARY, m) {
  define_op(
      m, "encode_boxes(Tensor reference_boxes, Tensor target_boxes, float[] weights) -> Tensor");
  define_op(
      m,
      "decode_boxes(Tensor deltas, Tensor reference_boxes, float[] weights, float clamp) -> "
      "Tensor");
}

}  // namespace frcnn_fast
