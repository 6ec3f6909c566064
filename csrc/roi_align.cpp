#include "roi_align.h"

#include "common/library.h"
#include "common/macros.h"
#include "common/roi_checks.h"

namespace frcnn_fast {

void check_roi_align_inputs(
    const at::Tensor& input, const at::Tensor& boxes, double spatial_scale, int64_t pooled_height,
    int64_t pooled_width) {
  check_single_map_inputs(input, boxes, spatial_scale, pooled_height, pooled_width);
}

namespace {

void check_levels(const at::Tensor& levels, const at::Tensor& boxes, int64_t num_levels) {
  TORCH_CHECK(num_levels > 0, "inputs must hold at least one feature map");
  TORCH_CHECK(
      levels.defined() && levels.dim() == 1 && levels.size(0) == boxes.size(0),
      "levels must have shape [K] = [", boxes.size(0), "], got ",
      levels.defined() ? levels.sizes() : at::IntArrayRef{});
  TORCH_CHECK(
      levels.scalar_type() == at::kLong, "levels must be int64, got ", levels.scalar_type());
  TORCH_CHECK(
      levels.device() == boxes.device(), "levels and boxes must be on the same device, got ",
      levels.device(), " and ", boxes.device());
}

// What both RoIAlign backward ops are given besides the levels: one (height, width, scale) per
// level and a gradient of the pooled shape.
void check_backward_sizes(
    const at::Tensor& grad, const at::Tensor& boxes, c10::ArrayRef<double> spatial_scales,
    int64_t pooled_height, int64_t pooled_width, int64_t batch_size, int64_t channels,
    c10::ArrayRef<int64_t> heights, c10::ArrayRef<int64_t> widths) {
  TORCH_CHECK(
      heights.size() == spatial_scales.size() && widths.size() == spatial_scales.size() &&
          !spatial_scales.empty(),
      "heights, widths and spatial_scales must have one entry per level, got ", heights.size(),
      ", ", widths.size(), " and ", spatial_scales.size());
  check_rois_shape(boxes);
  check_output_size(pooled_height, pooled_width);
  TORCH_CHECK(batch_size >= 0 && channels >= 0, "batch_size and channels must be non-negative");
  check_pooled_grad(grad, boxes, channels, pooled_height, pooled_width);
  for (size_t l = 0; l < spatial_scales.size(); ++l) {
    check_input_shape(batch_size, channels, heights[l], widths[l]);
    check_spatial_scale(spatial_scales[l], "spatial_scales");
  }
}

}  // namespace

void check_multilevel_roi_align_inputs(
    at::TensorList inputs, const at::Tensor& boxes, const at::Tensor& levels,
    c10::ArrayRef<double> spatial_scales, int64_t pooled_height, int64_t pooled_width) {
  TORCH_CHECK(!inputs.empty(), "inputs must hold at least one feature map");
  TORCH_CHECK(
      spatial_scales.size() == inputs.size(), "spatial_scales must have one entry per input (",
      inputs.size(), "), got ", spatial_scales.size());
  for (size_t l = 0; l < inputs.size(); ++l) {
    check_feature_map(inputs[l], "inputs");
    check_same_dtype_device(inputs[0], "inputs[0]", inputs[l], "inputs[l]");
    TORCH_CHECK(
        inputs[l].size(0) == inputs[0].size(0) && inputs[l].size(1) == inputs[0].size(1),
        "inputs must share N and C, got ", inputs[0].sizes(), " and ", inputs[l].sizes(),
        " at level ", l);
    check_spatial_scale(spatial_scales[l], "spatial_scales");
  }
  check_rois(boxes, inputs[0], "inputs");
  check_levels(levels, boxes, static_cast<int64_t>(inputs.size()));
  check_output_size(pooled_height, pooled_width);
}

void check_roi_align_backward_inputs(
    const at::Tensor& grad, const at::Tensor& boxes, double spatial_scale, int64_t pooled_height,
    int64_t pooled_width, int64_t batch_size, int64_t channels, int64_t height, int64_t width) {
  check_backward_sizes(
      grad, boxes, {spatial_scale}, pooled_height, pooled_width, batch_size, channels, {height},
      {width});
}

void check_multilevel_roi_align_backward_inputs(
    const at::Tensor& grad, const at::Tensor& boxes, const at::Tensor& levels,
    c10::ArrayRef<double> spatial_scales, int64_t pooled_height, int64_t pooled_width,
    int64_t batch_size, int64_t channels, c10::ArrayRef<int64_t> heights,
    c10::ArrayRef<int64_t> widths) {
  check_levels(levels, boxes, static_cast<int64_t>(spatial_scales.size()));
  check_backward_sizes(
      grad, boxes, spatial_scales, pooled_height, pooled_width, batch_size, channels, heights,
      widths);
}

TORCH_LIBRARY_FRAGMENT(FRCNN_FAST_LIBRARY, m) {
  // `deterministic` selects the backward algorithm (passed on to the backward op); the
  // forward itself is deterministic everywhere.
  define_op(
      m,
      "roi_align(Tensor input, Tensor boxes, float spatial_scale, SymInt pooled_height, "
      "SymInt pooled_width, int sampling_ratio, bool aligned, bool deterministic) -> Tensor");
  define_op(
      m,
      "_roi_align_backward(Tensor grad, Tensor boxes, float spatial_scale, SymInt pooled_height, "
      "SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width, "
      "int sampling_ratio, bool aligned, bool channels_last, bool deterministic) -> Tensor");
  // One op over all FPN levels: RoI k is pooled from inputs[levels[k]], so a multi-level
  // pooler needs no per-level index_select/nonzero (and no host sync).
  define_op(
      m,
      "multilevel_roi_align(Tensor[] inputs, Tensor boxes, Tensor levels, float[] spatial_scales, "
      "SymInt pooled_height, SymInt pooled_width, int sampling_ratio, bool aligned, "
      "bool deterministic) -> Tensor");
  define_op(
      m,
      "_multilevel_roi_align_backward(Tensor grad, Tensor boxes, Tensor levels, "
      "float[] spatial_scales, SymInt pooled_height, SymInt pooled_width, SymInt batch_size, "
      "SymInt channels, SymInt[] heights, SymInt[] widths, int sampling_ratio, bool aligned, "
      "bool channels_last, bool deterministic) -> Tensor[]");
}

}  // namespace frcnn_fast
