#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../common/box_math.h"
#include "../grid_anchors.h"
#include "parallel.h"

namespace frcnn_fast {
namespace {

at::Tensor grid_anchors_cpu(
    const at::Tensor& base_anchors, int64_t height, int64_t width, double stride_y, double stride_x,
    double offset) {
  check_grid_anchors_inputs(base_anchors, height, width, stride_y, stride_x, offset);
  const at::Tensor base = base_anchors.contiguous();
  const int64_t num_base = base.size(0);
  at::Tensor out = at::empty({height * width * num_base, 4}, base.options());
  if (out.numel() == 0) {
    return out;
  }
  FRCNN_DISPATCH_FLOATING_TYPES(base.scalar_type(), "grid_anchors_cpu", [&] {
    using T = at::opmath_type<scalar_t>;
    const T off = static_cast<T>(offset);
    const T sy = static_cast<T>(stride_y);
    const T sx = static_cast<T>(stride_x);
    const scalar_t* pb = base.const_data_ptr<scalar_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    // A row of the feature map costs an item per anchor.
    parallel_for_work(height, grain_for(width * num_base), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const T cy = cell_centre(i, off, sy);
        for (int64_t j = 0; j < width; ++j) {
          const T cx = cell_centre(j, off, sx);
          for (int64_t a = 0; a < num_base; ++a) {
            T box[4];
            load_box(pb + 4 * a, box);
            shift_box(box, cx, cy);
            store_box(box, o + 4 * ((i * width + j) * num_base + a));
          }
        }
      }
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(frcnn_fast, CPU, m) {
  m.impl("grid_anchors", &grid_anchors_cpu);
}

}  // namespace frcnn_fast
