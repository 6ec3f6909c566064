#include "remove_small_boxes.h"

#include <cmath>

#include "common/checks.h"
#include "common/library.h"
#include "common/macros.h"

namespace frcnn_fast {

void check_remove_small_boxes_inputs(const at::Tensor& boxes, double min_size) {
  check_boxes_2d(boxes, "boxes");
  TORCH_CHECK(!std::isnan(min_size), "min_size must not be NaN");
}

// The output length depends on the data: the fake kernel gives it a dynamic size.
TORCH_LIBRARY_FRAGMENT(FRCNN_FAST_LIBRARY, m) {
  define_op(m, "remove_small_boxes(Tensor boxes, float min_size) -> Tensor");
}

}  // namespace frcnn_fast
