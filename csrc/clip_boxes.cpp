#include "clip_boxes.h"

#include <cmath>

#include "common/checks.h"
#include "common/library.h"
#include "common/macros.h"

namespace frcnn_fast {

void check_clip_boxes_inputs(const at::Tensor& boxes, double height, double width) {
  check_boxes(boxes, "boxes");
  TORCH_CHECK(std::isfinite(height) && height >= 0, "height must be finite and >= 0, got ", height);
  TORCH_CHECK(std::isfinite(width) && width >= 0, "width must be finite and >= 0, got ", width);
}

TORCH_LIBRARY_FRAGMENT(FRCNN_FAST_LIBRARY, m) {
  define_op(m, "clip_boxes(Tensor boxes, float height, float width) -> Tensor");
}

}  // namespace frcnn_fast
