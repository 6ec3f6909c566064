#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../common/box_math.h"
#include "../grid_anchors.h"
#include "device.cuh"
#include "launch.cuh"

namespace frcnn_fast {
namespace {

template <typename scalar_t>
__global__ void grid_anchors_kernel(
    const scalar_t* __restrict__ base, int64_t num_base, int64_t width, int64_t n,
    at::opmath_type<scalar_t> offset, at::opmath_type<scalar_t> stride_y,
    at::opmath_type<scalar_t> stride_x, scalar_t* __restrict__ out) {
  using T = at::opmath_type<scalar_t>;
  FRCNN_GRID_STRIDE_LOOP(idx, n) {
    const int64_t a = idx % num_base;
    const int64_t cell = idx / num_base;
    const T cx = cell_centre(cell % width, offset, stride_x);
    const T cy = cell_centre(cell / width, offset, stride_y);
    T box[4];
    load_box(base + 4 * a, box);
    shift_box(box, cx, cy);
    store_box(box, out + 4 * idx);
  }
}

at::Tensor grid_anchors_cuda(
    const at::Tensor& base_anchors, int64_t height, int64_t width, double stride_y, double stride_x,
    double offset) {
  check_grid_anchors_inputs(base_anchors, height, width, stride_y, stride_x, offset);
  const DeviceGuard guard(base_anchors.device());
  const at::Tensor base = base_anchors.contiguous();
  const int64_t num_base = base.size(0);
  const int64_t n = height * width * num_base;
  at::Tensor out = at::empty({n, 4}, base.options());
  FRCNN_DISPATCH_FLOATING_TYPES(base.scalar_type(), "grid_anchors_cuda", [&] {
    using T = at::opmath_type<scalar_t>;
    FRCNN_LAUNCH_OVER(
        n, grid_anchors_kernel<scalar_t>, base.const_data_ptr<scalar_t>(), num_base, width, n,
        static_cast<T>(offset), static_cast<T>(stride_y), static_cast<T>(stride_x),
        out.mutable_data_ptr<scalar_t>());
  });
  return out;
}

}  // namespace

FRCNN_CUDA_LIBRARY_IMPL(m) {
  m.impl("grid_anchors", &grid_anchors_cuda);
}

}  // namespace frcnn_fast
