#include "grid_anchors.h"

#include <c10/util/safe_numerics.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "common/checks.h"
#include "common/library.h"
#include "common/macros.h"

namespace frcnn_fast {

void check_grid_anchors_inputs(
    const at::Tensor& base_anchors, int64_t height, int64_t width, double stride_y, double stride_x,
    double offset) {
  check_boxes_2d(base_anchors, "base_anchors");
  TORCH_CHECK(height >= 0, "height (feature map rows) must be >= 0, got ", height);
  TORCH_CHECK(width >= 0, "width (feature map columns) must be >= 0, got ", width);
  // The output has height * width * A rows of 4 values; a product that wraps around would
  // size the output too small for the loops that fill it.
  uint64_t numel = 4 * static_cast<uint64_t>(base_anchors.size(0));
  const bool overflows = c10::mul_overflows(numel, static_cast<uint64_t>(height), &numel) ||
      c10::mul_overflows(numel, static_cast<uint64_t>(width), &numel) ||
      numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  TORCH_CHECK(
      !overflows, "height * width * num_anchors is too large: height=", height, ", width=", width,
      ", num_anchors=", base_anchors.size(0));
  TORCH_CHECK(
      std::isfinite(stride_y) && stride_y > 0, "stride_y must be finite and > 0, got ", stride_y);
  TORCH_CHECK(
      std::isfinite(stride_x) && stride_x > 0, "stride_x must be finite and > 0, got ", stride_x);
  TORCH_CHECK(std::isfinite(offset), "offset must be finite, got ", offset);
}

// Anchors of one feature map: base_anchors[a] shifted to the centre of every cell (i, j),
// written row-major at row (i * width + j) * A + a.
TORCH_LIBRARY_FRAGMENT(FRCNN_FAST_LIBRARY, m) {
  define_op(
      m,
      "grid_anchors(Tensor base_anchors, int height, int width, float stride_y, float stride_x, "
      "float offset) -> Tensor");
}

}  // namespace frcnn_fast
