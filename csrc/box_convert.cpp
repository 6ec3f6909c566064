#include "box_convert.h"

#include "common/box_math.h"
#include "common/checks.h"
#include "common/library.h"
#include "common/macros.h"

namespace frcnn_fast {

namespace {

int parse_format(const std::string& fmt, const char* name) {
  if (fmt == "xyxy") return kXYXY;
  if (fmt == "yxyx") return kYXYX;
  if (fmt == "xywh") return kXYWH;
  if (fmt == "cxcywh") return kCXCYWH;
  TORCH_CHECK(false, name, " must be one of 'xyxy', 'yxyx', 'xywh', 'cxcywh', got '", fmt, "'");
}

}  // namespace

std::pair<int, int> check_box_convert_inputs(
    const at::Tensor& boxes, const std::string& in_fmt, const std::string& out_fmt) {
  check_boxes(boxes, "boxes");
  return {parse_format(in_fmt, "in_fmt"), parse_format(out_fmt, "out_fmt")};
}

TORCH_LIBRARY_FRAGMENT(FRCNN_FAST_LIBRARY, m) {
  define_op(m, "box_convert(Tensor boxes, str in_fmt, str out_fmt) -> Tensor");
}

}  // namespace frcnn_fast
