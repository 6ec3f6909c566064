#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../box_area.h"
#include "../common/box_math.h"
#include "device.cuh"
#include "launch.cuh"

namespace frcnn_fast {
namespace {

template <typename scalar_t>
__global__ void box_area_kernel(
    const scalar_t* __restrict__ in, int64_t n, scalar_t* __restrict__ out) {
  using T = at::opmath_type<scalar_t>;
  FRCNN_GRID_STRIDE_LOOP(i, n) {
    T box[4];
    load_box(in + 4 * i, box);
    out[i] = static_cast<scalar_t>(box_area(box[0], box[1], box[2], box[3]));
  }
}

at::Tensor box_area_cuda(const at::Tensor& boxes) {
  check_box_area_inputs(boxes);
  const DeviceGuard guard(boxes.device());
  const at::Tensor b = boxes.contiguous();
  at::Tensor out = at::empty(b.sizes().slice(0, b.dim() - 1), b.options());
  const int64_t n = out.numel();
  FRCNN_DISPATCH_FLOATING_TYPES(b.scalar_type(), "box_area_cuda", [&] {
    FRCNN_LAUNCH_OVER(
        n, box_area_kernel<scalar_t>, b.const_data_ptr<scalar_t>(), n,
        out.mutable_data_ptr<scalar_t>());
  });
  return out;
}

}  // namespace

FRCNN_CUDA_LIBRARY_IMPL(m) {
  m.impl("box_area", &box_area_cuda);
}

}  // namespace frcnn_fast
