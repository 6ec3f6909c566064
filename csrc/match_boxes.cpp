#include "match_boxes.h"

#include <ATen/ATen.h>

#include <cmath>

#include "common/checks.h"
#include "common/library.h"
#include "common/macros.h"

namespace frcnn_fast {
namespace {

void check_threshold(double t, const char* name) {
  TORCH_CHECK(t >= 0.0 && t <= 1.0, name, " must be in [0, 1], got ", t);  // NaN fails too
}

// The first offending (image, row) of a boolean [B, G] mask, for the error message.
std::pair<int64_t, int64_t> first_true(const at::Tensor& mask) {
  const at::Tensor flat = mask.reshape(-1).cpu();
  const int64_t i = flat.to(at::kByte).argmax().item<int64_t>();
  return {i / mask.size(1), i % mask.size(1)};
}

// Values a kernel relies on. One reduction to a single flag, one host read of it; the exact
// culprit is looked up only when something is wrong.
void check_values(const at::Tensor& gt, const at::Tensor& counts, bool batched) {
  const int64_t g = gt.size(1);
  at::Tensor bad_counts;
  at::Tensor real = at::ones({gt.size(0), g}, gt.options().dtype(at::kBool));
  if (counts.defined()) {
    bad_counts = counts.lt(0).logical_or_(counts.gt(g));
    real = at::arange(g, counts.options()).unsqueeze(0).lt(counts.unsqueeze(1));
  }
  const at::Tensor bad_rows = at::isfinite(gt).all(-1).logical_not_().logical_and_(real);
  at::Tensor any_bad = bad_rows.any();
  if (bad_counts.defined()) {
    any_bad.logical_or_(bad_counts.any());
  }
  if (!any_bad.item<bool>()) {
    return;
  }
  if (bad_counts.defined() && bad_counts.any().item<bool>()) {
    const int64_t b = bad_counts.to(at::kByte).argmax().item<int64_t>();
    TORCH_CHECK(
        false, "gt_counts must be in [0, ", g, "] (the padded number of ground truths), got ",
        counts[b].item<int64_t>(), " for image ", b);
  }
  const auto where = first_true(bad_rows);
  const at::Tensor box = gt[where.first][where.second].to(at::kDouble).cpu();
  const double* v = box.const_data_ptr<double>();
  if (batched) {
    TORCH_CHECK(
        false, "gt_boxes must have finite coordinates, got [", v[0], ", ", v[1], ", ", v[2], ", ",
        v[3], "] for image ", where.first, ", box ", where.second);
  }
  TORCH_CHECK(
      false, "gt_boxes must have finite coordinates, got [", v[0], ", ", v[1], ", ", v[2], ", ",
      v[3], "] in row ", where.second);
}

}  // namespace

MatchInputs check_match_boxes_inputs(
    const at::Tensor& gt_boxes, const std::optional<at::Tensor>& gt_counts,
    const at::Tensor& anchors, double high_threshold, double low_threshold, bool validate,
    bool batched) {
  if (batched) {
    check_boxes(gt_boxes, "gt_boxes");
    TORCH_CHECK(gt_boxes.dim() == 3, "gt_boxes must have shape [B, G, 4], got ", gt_boxes.sizes());
  } else {
    check_boxes_2d(gt_boxes, "gt_boxes");
  }
  check_boxes_2d(anchors, "anchors");
  check_same_dtype_device(gt_boxes, "gt_boxes", anchors, "anchors");
  check_threshold(high_threshold, "high_threshold");
  check_threshold(low_threshold, "low_threshold");
  TORCH_CHECK(
      low_threshold <= high_threshold, "low_threshold must be <= high_threshold, got ",
      low_threshold, " and ", high_threshold);
  MatchInputs in;
  in.gt_boxes = (batched ? gt_boxes : gt_boxes.unsqueeze(0)).contiguous();
  in.anchors = anchors.contiguous();
  if (gt_counts.has_value() && gt_counts->defined()) {
    const at::Tensor& c = *gt_counts;
    TORCH_CHECK(
        c.scalar_type() == at::kLong, "gt_counts must be an int64 tensor, got ", c.scalar_type());
    TORCH_CHECK(
        c.dim() == 1 && c.size(0) == gt_boxes.size(0),
        "gt_counts must have shape [B] with B = gt_boxes.size(0) = ", gt_boxes.size(0), ", got ",
        c.sizes());
    TORCH_CHECK(
        c.device() == gt_boxes.device(), "gt_counts and gt_boxes must be on the same device, got ",
        c.device(), " and ", gt_boxes.device());
    in.gt_counts = c.contiguous();
  }
  if (validate) {
    check_values(in.gt_boxes, in.gt_counts, batched);
  }
  return in;
}

TORCH_LIBRARY_FRAGMENT(FRCNN_FAST_LIBRARY, m) {
  define_op(
      m,
      "match_boxes(Tensor gt_boxes, Tensor anchors, float high_threshold, float low_threshold, "
      "bool allow_low_quality_matches=False, bool validate=True) -> (Tensor, Tensor)");
  define_op(
      m,
      "match_boxes_batched(Tensor gt_boxes, Tensor? gt_counts, Tensor anchors, "
      "float high_threshold, float low_threshold, bool allow_low_quality_matches=False, "
      "bool validate=True) -> (Tensor, Tensor)");
}

}  // namespace frcnn_fast
