#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../clip_boxes.h"
#include "../common/box_math.h"
#include "parallel.h"

namespace frcnn_fast {
namespace {

at::Tensor clip_boxes_cpu(const at::Tensor& boxes, double height, double width) {
  check_clip_boxes_inputs(boxes, height, width);
  const at::Tensor b = boxes.contiguous();
  at::Tensor out = at::empty_like(b);
  const int64_t n = b.numel() / 4;
  if (n == 0) {
    return out;
  }
  FRCNN_DISPATCH_FLOATING_TYPES(b.scalar_type(), "clip_boxes_cpu", [&] {
    using T = at::opmath_type<scalar_t>;
    const T h = static_cast<T>(height);
    const T w = static_cast<T>(width);
    const scalar_t* in = b.const_data_ptr<scalar_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    parallel_for_boxes(n, box_cost::kClip, [&](int64_t i) {
      T box[4];
      load_box(in + 4 * i, box);
      clip_box(box, h, w);
      store_box(box, o + 4 * i);
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(frcnn_fast, CPU, m) {
  m.impl("clip_boxes", &clip_boxes_cpu);
}

}  // namespace frcnn_fast
