#include "box_area.h"

#include <torch/library.h>

#include "common/checks.h"
#include "common/macros.h"

namespace frcnn_fast {

void check_box_area_inputs(const at::Tensor& boxes) {
  check_boxes(boxes, "boxes");
}

TORCH_LIBRARY_FRAGMENT(FRCNN_FAST_LIBRARY, m) {
  m.def("box_area(Tensor boxes) -> Tensor", {at::Tag::pt2_compliant_tag});
}

}  // namespace frcnn_fast
