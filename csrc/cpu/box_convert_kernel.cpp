#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../box_convert.h"
#include "../common/box_math.h"
#include "parallel.h"

namespace frcnn_fast {
namespace {

at::Tensor box_convert_cpu(
    const at::Tensor& boxes, c10::string_view in_fmt, c10::string_view out_fmt) {
  const auto fmts = check_box_convert_inputs(boxes, std::string(in_fmt), std::string(out_fmt));
  const at::Tensor b = boxes.contiguous();
  at::Tensor out = at::empty_like(b);
  const int64_t n = b.numel() / 4;
  if (n == 0) {
    return out;
  }
  FRCNN_DISPATCH_FLOATING_TYPES(b.scalar_type(), "box_convert_cpu", [&] {
    using T = at::opmath_type<scalar_t>;
    const scalar_t* in = b.const_data_ptr<scalar_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    parallel_for_boxes(n, box_cost::kElementwise, [&](int64_t i) {
      T box[4], xyxy[4], res[4];
      load_box(in + 4 * i, box);
      to_xyxy(fmts.first, box, xyxy);
      from_xyxy(fmts.second, xyxy, res);
      store_box(res, o + 4 * i);
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(frcnn_fast, CPU, m) {
  m.impl("box_convert", &box_convert_cpu);
}

}  // namespace frcnn_fast
