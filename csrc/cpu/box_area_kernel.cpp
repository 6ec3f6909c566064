#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../box_area.h"
#include "../common/box_math.h"
#include "parallel.h"

namespace frcnn_fast {
namespace {

at::Tensor box_area_cpu(const at::Tensor& boxes) {
  check_box_area_inputs(boxes);
  const at::Tensor b = boxes.contiguous();
  at::Tensor out = at::empty(b.sizes().slice(0, b.dim() - 1), b.options());
  const int64_t n = out.numel();
  if (n == 0) {
    return out;
  }
  FRCNN_DISPATCH_FLOATING_TYPES(b.scalar_type(), "box_area_cpu", [&] {
    using T = at::opmath_type<scalar_t>;
    const scalar_t* in = b.const_data_ptr<scalar_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    parallel_for_boxes(n, box_cost::kElementwise, [&](int64_t i) {
      T box[4];
      load_box(in + 4 * i, box);
      o[i] = static_cast<scalar_t>(box_area(box[0], box[1], box[2], box[3]));
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(frcnn_fast, CPU, m) {
  m.impl("box_area", &box_area_cpu);
}

}  // namespace frcnn_fast
