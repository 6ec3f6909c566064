#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../clip_boxes.h"
#include "../common/box_math.h"
#include "device.cuh"
#include "launch.cuh"

namespace frcnn_fast {
namespace {

template <typename scalar_t>
__global__ void clip_boxes_kernel(
    const scalar_t* __restrict__ in, int64_t n, at::opmath_type<scalar_t> h,
    at::opmath_type<scalar_t> w, scalar_t* __restrict__ out) {
  using T = at::opmath_type<scalar_t>;
  FRCNN_GRID_STRIDE_LOOP(i, n) {
    T box[4];
    load_box(in + 4 * i, box);
    clip_box(box, h, w);
    store_box(box, out + 4 * i);
  }
}

at::Tensor clip_boxes_cuda(const at::Tensor& boxes, double height, double width) {
  check_clip_boxes_inputs(boxes, height, width);
  const DeviceGuard guard(boxes.device());
  const at::Tensor b = boxes.contiguous();
  at::Tensor out = at::empty_like(b);
  const int64_t n = b.numel() / 4;
  FRCNN_DISPATCH_FLOATING_TYPES(b.scalar_type(), "clip_boxes_cuda", [&] {
    using T = at::opmath_type<scalar_t>;
    FRCNN_LAUNCH_OVER(
        n, clip_boxes_kernel<scalar_t>, b.const_data_ptr<scalar_t>(), n, static_cast<T>(height),
        static_cast<T>(width), out.mutable_data_ptr<scalar_t>());
  });
  return out;
}

}  // namespace

FRCNN_CUDA_LIBRARY_IMPL(m) {
  m.impl("clip_boxes", &clip_boxes_cuda);
}

}  // namespace frcnn_fast
