#include "box_iou.h"

#include "common/checks.h"
#include "common/library.h"
#include "common/macros.h"

namespace frcnn_fast {

void check_box_iou_inputs(const at::Tensor& boxes1, const at::Tensor& boxes2) {
  check_boxes_2d(boxes1, "boxes1");
  check_boxes_2d(boxes2, "boxes2");
  check_same_dtype_device(boxes1, "boxes1", boxes2, "boxes2");
}

void check_box_iou_aligned_inputs(const at::Tensor& boxes1, const at::Tensor& boxes2) {
  check_boxes(boxes1, "boxes1");
  check_boxes(boxes2, "boxes2");
  check_same_dtype_device(boxes1, "boxes1", boxes2, "boxes2");
  check_same_shape(boxes1, "boxes1", boxes2, "boxes2");
}

TORCH_LIBRARY_FRAGMENT(FRCNN_FAST_LIBRARY, m) {
  define_op(m, "box_iou(Tensor boxes1, Tensor boxes2) -> Tensor");
  define_op(m, "box_iou_aligned(Tensor boxes1, Tensor boxes2) -> Tensor");
}

}  // namespace frcnn_fast
