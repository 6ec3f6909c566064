#include "box_area.h"

#include "common/checks.h"
#include "common/library.h"
#include "common/macros.h"

namespace frcnn_fast {

void check_box_area_inputs(const at::Tensor& boxes) {
  check_boxes(boxes, "boxes");
}

TORCH_LIBRARY_FRAGMENT(FRCNN_FAST_LIBRARY, m) {
  define_op(m, "box_area(Tensor boxes) -> Tensor");
}

}  // namespace frcnn_fast
