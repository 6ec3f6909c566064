#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../box_coding.h"
#include "../common/box_math.h"
#include "device.cuh"
#include "launch.cuh"

namespace frcnn_fast {
namespace {

template <typename scalar_t>
__global__ void encode_boxes_kernel(
    const scalar_t* __restrict__ ref, const scalar_t* __restrict__ tgt, int64_t n,
    BoxWeights<at::opmath_type<scalar_t>> wt, scalar_t* __restrict__ out) {
  using T = at::opmath_type<scalar_t>;
  FRCNN_GRID_STRIDE_LOOP(i, n) {
    T r[4], t[4], d[4];
    load_box(ref + 4 * i, r);
    load_box(tgt + 4 * i, t);
    encode_box(r, t, wt, d);
    store_box(d, out + 4 * i);
  }
}

template <typename scalar_t>
__global__ void decode_boxes_kernel(
    const scalar_t* __restrict__ deltas, const scalar_t* __restrict__ ref, int64_t n,
    int64_t per_ref, BoxWeights<at::opmath_type<scalar_t>> wt, at::opmath_type<scalar_t> clamp,
    scalar_t* __restrict__ out) {
  using T = at::opmath_type<scalar_t>;
  FRCNN_GRID_STRIDE_LOOP(i, n) {
    T delta[4], r[4], box[4];
    load_box(deltas + 4 * i, delta);
    load_box(ref + 4 * (i / per_ref), r);
    decode_box(delta, r, wt, clamp, box);
    store_box(box, out + 4 * i);
  }
}

at::Tensor encode_boxes_cuda(
    const at::Tensor& reference_boxes, const at::Tensor& target_boxes,
    c10::ArrayRef<double> weights) {
  check_encode_boxes_inputs(reference_boxes, target_boxes, weights);
  const DeviceGuard guard(reference_boxes.device());
  const at::Tensor ref = reference_boxes.contiguous();
  const at::Tensor tgt = target_boxes.contiguous();
  at::Tensor out = at::empty_like(ref);
  const int64_t n = ref.numel() / 4;
  FRCNN_DISPATCH_FLOATING_TYPES(ref.scalar_type(), "encode_boxes_cuda", [&] {
    using T = at::opmath_type<scalar_t>;
    FRCNN_LAUNCH_OVER(
        n, encode_boxes_kernel<scalar_t>, ref.const_data_ptr<scalar_t>(),
        tgt.const_data_ptr<scalar_t>(), n, to_weights<T>(weights),
        out.mutable_data_ptr<scalar_t>());
  });
  return out;
}

at::Tensor decode_boxes_cuda(
    const at::Tensor& deltas, const at::Tensor& reference_boxes, c10::ArrayRef<double> weights,
    double clamp) {
  check_decode_boxes_inputs(deltas, reference_boxes, weights, clamp);
  const DeviceGuard guard(deltas.device());
  const at::Tensor d = deltas.contiguous();
  const at::Tensor ref = reference_boxes.contiguous();
  at::Tensor out = at::empty_like(d);
  const int64_t per_ref = d.size(1) / 4;
  const int64_t n = d.size(0) * per_ref;
  FRCNN_DISPATCH_FLOATING_TYPES(d.scalar_type(), "decode_boxes_cuda", [&] {
    using T = at::opmath_type<scalar_t>;
    FRCNN_LAUNCH_OVER(
        n, decode_boxes_kernel<scalar_t>, d.const_data_ptr<scalar_t>(),
        ref.const_data_ptr<scalar_t>(), n, per_ref, to_weights<T>(weights), static_cast<T>(clamp),
        out.mutable_data_ptr<scalar_t>());
  });
  return out;
}

}  // namespace

FRCNN_CUDA_LIBRARY_IMPL(m) {
  m.impl("encode_boxes", &encode_boxes_cuda);
  m.impl("decode_boxes", &decode_boxes_cuda);
}

}  // namespace frcnn_fast
