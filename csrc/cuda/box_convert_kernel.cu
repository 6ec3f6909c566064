#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../box_convert.h"
#include "../common/box_math.h"
#include "device.cuh"
#include "launch.cuh"

namespace frcnn_fast {
namespace {

template <typename scalar_t>
__global__ void box_convert_kernel(
    const scalar_t* __restrict__ in, int64_t n, int in_fmt, int out_fmt,
    scalar_t* __restrict__ out) {
  using T = at::opmath_type<scalar_t>;
  FRCNN_GRID_STRIDE_LOOP(i, n) {
    T box[4], xyxy[4], res[4];
    load_box(in + 4 * i, box);
    to_xyxy(in_fmt, box, xyxy);
    from_xyxy(out_fmt, xyxy, res);
    store_box(res, out + 4 * i);
  }
}

at::Tensor box_convert_cuda(
    const at::Tensor& boxes, c10::string_view in_fmt, c10::string_view out_fmt) {
  const auto fmts = check_box_convert_inputs(boxes, std::string(in_fmt), std::string(out_fmt));
  const DeviceGuard guard(boxes.device());
  const at::Tensor b = boxes.contiguous();
  at::Tensor out = at::empty_like(b);
  const int64_t n = b.numel() / 4;
  FRCNN_DISPATCH_FLOATING_TYPES(b.scalar_type(), "box_convert_cuda", [&] {
    FRCNN_LAUNCH_OVER(
        n, box_convert_kernel<scalar_t>, b.const_data_ptr<scalar_t>(), n, fmts.first, fmts.second,
        out.mutable_data_ptr<scalar_t>());
  });
  return out;
}

}  // namespace

FRCNN_CUDA_LIBRARY_IMPL(m) {
  m.impl("box_convert", &box_convert_cuda);
}

}  // namespace frcnn_fast
