#include "grid_anchors.h"

#include <torch/library.h>

#include <cmath>

#include "common/checks.h"

namespace frcnn_fast {

void check_grid_anchors_inputs(
    const at::Tensor& base_anchors, int64_t height, int64_t width, double stride_y,
    double stride_x, double offset) {
  check_boxes_2d(base_anchors, "base_anchors");
  TORCH_CHECK(height >= 0, "height (feature map rows) must be >= 0, got ", height);
  TORCH_CHECK(width >= 0, "width (feature map columns) must be >= 0, got ", width);
  TORCH_CHECK(
      std::isfinite(stride_y) && stride_y > 0, "stride_y must be finite and > 0, got ", stride_y);
  TORCH_CHECK(
      std::isfinite(stride_x) && stride_x > 0, "stride_x must be finite and > 0, got ", stride_x);
  TORCH_CHECK(std::isfinite(offset), "offset must be finite, got ", offset);
}

// Anchors of one feature map: base_anchors[a] shifted to the centre of every cell (i, j),
// written row-major at row (i * width + j) * A + a.
TORCH_LIBRARY_FRAGMENT(frcnn_fast, m) {
  m.def(
      "grid_anchors(Tensor base_anchors, int height, int width, float stride_y, float stride_x, "
      "float offset) -> Tensor",
      {at::Tag::pt2_compliant_tag});
}

}  // namespace frcnn_fast
