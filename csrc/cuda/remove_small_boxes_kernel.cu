#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../common/box_math.h"
#include "../remove_small_boxes.h"
#include "device.cuh"
#include "launch.cuh"

namespace frcnn_fast {
namespace {

template <typename scalar_t>
__global__ void large_enough_kernel(
    const scalar_t* __restrict__ in, int64_t n, at::opmath_type<scalar_t> min_side,
    bool* __restrict__ mask) {
  using T = at::opmath_type<scalar_t>;
  FRCNN_GRID_STRIDE_LOOP(i, n) {
    T box[4];
    load_box(in + 4 * i, box);
    mask[i] = box[2] - box[0] >= min_side && box[3] - box[1] >= min_side;
  }
}

at::Tensor remove_small_boxes_cuda(const at::Tensor& boxes, double min_size) {
  check_remove_small_boxes_inputs(boxes, min_size);
  const DeviceGuard guard(boxes.device());
  const at::Tensor b = boxes.contiguous();
  const int64_t n = b.size(0);
  if (n == 0) {
    return at::empty({0}, b.options().dtype(at::kLong));
  }
  at::Tensor mask = at::empty({n}, b.options().dtype(at::kBool));
  FRCNN_DISPATCH_FLOATING_TYPES(b.scalar_type(), "remove_small_boxes_cuda", [&] {
    using T = at::opmath_type<scalar_t>;
    FRCNN_LAUNCH_OVER(
        n, large_enough_kernel<scalar_t>, b.const_data_ptr<scalar_t>(), n, static_cast<T>(min_size),
        mask.mutable_data_ptr<bool>());
  });
  // The output length is data dependent: nonzero's one device-to-host sync of the count is
  // the price of a compact index tensor.
  return at::nonzero(mask).view({-1});
}

}  // namespace

FRCNN_CUDA_LIBRARY_IMPL(m) {
  m.impl("remove_small_boxes", &remove_small_boxes_cuda);
}

}  // namespace frcnn_fast
