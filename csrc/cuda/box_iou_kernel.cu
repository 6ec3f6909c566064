#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <algorithm>

#include "../box_iou.h"
#include "../common/box_math.h"
#include "device.cuh"
#include "launch.cuh"

namespace frcnn_fast {
namespace {

// A warp covers 32 consecutive columns of one output row, so stores are coalesced; each thread
// keeps its boxes2 entry in registers while it walks down the rows.
constexpr int kIouBlockX = 32;
constexpr int kIouBlockY = 8;

template <typename scalar_t>
__global__ void box_iou_kernel(
    const scalar_t* __restrict__ a, const scalar_t* __restrict__ b, int64_t n, int64_t m,
    scalar_t* __restrict__ out) {
  using T = at::opmath_type<scalar_t>;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < m;
       j += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    T bb[4];
    load_box(b + 4 * j, bb);
    const T barea = box_area(bb[0], bb[1], bb[2], bb[3]);
    for (int64_t i = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y; i < n;
         i += static_cast<int64_t>(blockDim.y) * gridDim.y) {
      T ab[4];
      load_box(a + 4 * i, ab);
      const T inter = box_intersection(ab[0], ab[1], ab[2], ab[3], bb[0], bb[1], bb[2], bb[3]);
      out[i * m + j] =
          static_cast<scalar_t>(iou_from_areas(inter, box_area(ab[0], ab[1], ab[2], ab[3]), barea));
    }
  }
}

template <typename scalar_t>
__global__ void box_iou_aligned_kernel(
    const scalar_t* __restrict__ a, const scalar_t* __restrict__ b, int64_t n,
    scalar_t* __restrict__ out) {
  using T = at::opmath_type<scalar_t>;
  FRCNN_GRID_STRIDE_LOOP(i, n) {
    T ab[4], bb[4];
    load_box(a + 4 * i, ab);
    load_box(b + 4 * i, bb);
    out[i] = static_cast<scalar_t>(box_iou(ab, bb));
  }
}

at::Tensor box_iou_cuda(const at::Tensor& boxes1, const at::Tensor& boxes2) {
  check_box_iou_inputs(boxes1, boxes2);
  const DeviceGuard guard(boxes1.device());
  const at::Tensor a = boxes1.contiguous();
  const at::Tensor b = boxes2.contiguous();
  const int64_t n = a.size(0);
  const int64_t m = b.size(0);
  at::Tensor out = at::empty({n, m}, a.options());
  if (out.numel() == 0) {
    return out;
  }
  const dim3 block(kIouBlockX, kIouBlockY);
  const dim3 grid(
      static_cast<unsigned int>(
          std::min<int64_t>((m + kIouBlockX - 1) / kIouBlockX, max_grid_dim())),
      static_cast<unsigned int>(
          std::min<int64_t>((n + kIouBlockY - 1) / kIouBlockY, max_grid_dim())));
  const cudaStream_t stream = current_stream();
  FRCNN_DISPATCH_FLOATING_TYPES(a.scalar_type(), "box_iou_cuda", [&] {
    FRCNN_LAUNCH(box_iou_kernel<scalar_t>, grid, block, 0, stream)(
        a.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(), n, m,
        out.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor box_iou_aligned_cuda(const at::Tensor& boxes1, const at::Tensor& boxes2) {
  check_box_iou_aligned_inputs(boxes1, boxes2);
  const DeviceGuard guard(boxes1.device());
  const at::Tensor a = boxes1.contiguous();
  const at::Tensor b = boxes2.contiguous();
  at::Tensor out = at::empty(a.sizes().slice(0, a.dim() - 1), a.options());
  const int64_t n = out.numel();
  FRCNN_DISPATCH_FLOATING_TYPES(a.scalar_type(), "box_iou_aligned_cuda", [&] {
    FRCNN_LAUNCH_OVER(
        n, box_iou_aligned_kernel<scalar_t>, a.const_data_ptr<scalar_t>(),
        b.const_data_ptr<scalar_t>(), n, out.mutable_data_ptr<scalar_t>());
  });
  return out;
}

}  // namespace

FRCNN_CUDA_LIBRARY_IMPL(m) {
  m.impl("box_iou", &box_iou_cuda);
  m.impl("box_iou_aligned", &box_iou_aligned_cuda);
}

}  // namespace frcnn_fast
