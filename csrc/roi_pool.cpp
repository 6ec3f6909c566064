#include "roi_pool.h"

#include "common/library.h"
#include "common/macros.h"
#include "common/roi_checks.h"

namespace frcnn_fast {

void check_roi_pool_inputs(
    const at::Tensor& input, const at::Tensor& boxes, double spatial_scale, int64_t pooled_height,
    int64_t pooled_width) {
  check_single_map_inputs(input, boxes, spatial_scale, pooled_height, pooled_width);
}

void check_roi_pool_backward_inputs(
    const at::Tensor& grad, const at::Tensor& boxes, const at::Tensor& argmax, int64_t batch_size,
    int64_t channels, int64_t height, int64_t width) {
  check_rois_shape(boxes);
  check_input_shape(batch_size, channels, height, width);
  TORCH_CHECK(grad.dim() == 4, "grad must have shape [K, C, PH, PW], got ", grad.sizes());
  check_pooled_grad(grad, boxes, channels, grad.size(2), grad.size(3));
  TORCH_CHECK(
      argmax.scalar_type() == at::kLong && argmax.sizes() == grad.sizes(),
      "argmax must be int64 with the shape of grad ", grad.sizes(), ", got ", argmax.scalar_type(),
      " ", argmax.sizes());
  TORCH_CHECK(
      argmax.device() == grad.device(), "argmax and grad must be on the same device, got ",
      argmax.device(), " and ", grad.device());
}

void check_roi_pool_backward_recompute_inputs(
    const at::Tensor& grad, const at::Tensor& input, const at::Tensor& boxes,
    double spatial_scale) {
  check_feature_map(input, "input");
  check_rois(boxes, input, "input");
  check_spatial_scale(spatial_scale);
  TORCH_CHECK(
      grad.defined() && grad.dim() == 4, "grad must have shape [K, C, PH, PW], got ", grad.sizes());
  check_output_size(grad.size(2), grad.size(3));
  check_pooled_grad(grad, boxes, input.size(1), grad.size(2), grad.size(3));
}

TORCH_LIBRARY_FRAGMENT(FRCNN_FAST_LIBRARY, m) {
  // `deterministic` selects the backward algorithm (saved for _roi_pool_backward); the
  // forward itself is deterministic everywhere.
  define_op(
      m,
      "roi_pool(Tensor input, Tensor boxes, float spatial_scale, SymInt pooled_height, "
      "SymInt pooled_width, bool deterministic) -> (Tensor, Tensor)");
  // The forward without argmax, for when no gradient is needed (the wrapper picks it under
  // torch.no_grad() or for an input that does not require grad): the same output, bit for
  // bit, without computing or storing the int64 argmax, which is as large as the output.
  define_op(
      m,
      "roi_pool_inference(Tensor input, Tensor boxes, float spatial_scale, SymInt pooled_height, "
      "SymInt pooled_width) -> Tensor");
  define_op(
      m,
      "_roi_pool_backward(Tensor grad, Tensor boxes, Tensor argmax, SymInt batch_size, "
      "SymInt channels, SymInt height, SymInt width, bool channels_last, bool deterministic) "
      "-> Tensor");
  // The gradient of roi_pool_inference on backends that recompute each bin's argmax from the
  // input instead of storing it (CPU): the same bits as _roi_pool_backward with the argmax of
  // roi_pool, without that int64 tensor in memory between forward and backward.
  define_op(
      m,
      "_roi_pool_backward_recompute(Tensor grad, Tensor input, Tensor boxes, float spatial_scale) "
      "-> Tensor");
}

}  // namespace frcnn_fast
