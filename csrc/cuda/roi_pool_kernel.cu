#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <algorithm>
#include <cfloat>
#include <tuple>

#include "../common/roi_checks.h"
#include "../common/roi_math.h"
#include "../roi_pool.h"
#include "device.cuh"
#include "launch.cuh"
#include "roi_common.cuh"

// RoI max pooling on CUDA (Fast R-CNN / torchvision semantics, geometry from common/roi_math.h).
//
// Forward: one thread per output element (k, c, ph, pw), in the output's memory order (NCHW or
// NHWC, so that neighbouring threads write neighbouring elements); it scans its bin's cells in
// row-major order keeping the first strict maximum, exactly as the CPU kernel does. Without an
// argmax buffer (roi_pool_inference) it only skips storing the cell: the same output bits.
//
// Backward, atomic (default): one thread per gradient element adds it to its argmax cell with
// atomicAdd into a float (double for float64) buffer. Several bins (overlapping bins of one
// RoI, other RoIs) can hit one cell, so the order of the adds varies run to run.
//
// Backward, deterministic: one block owns the gradient planes of (image n, a few channels)
// and visits image n's RoIs in index order, with a barrier between RoIs, so no two RoIs touch
// a plane at once. Within a RoI, one thread per (channel, bin) item; bins of one RoI can share
// an argmax cell (overlapping bins, or a RoI smaller than the output grid), so the item whose
// bin is the FIRST with that cell (the "leader") adds, in bin order, the gradients of all bins
// with that cell; the others do nothing. Each element therefore sums its contributions in one
// fixed order -- RoI index, then bin -- which is the CPU kernel's order: the same bits as the
// CPU, run to run, for any grid. No atomics and no intermediates beyond the float buffer.
// (The op gets no spatial_scale, so bins are matched by their argmax, not by geometry; the
// leader test costs O(bins) per item, cheap next to the memory traffic for 7x7 outputs.)

namespace frcnn_fast {
namespace {

constexpr int kDetThreads = 128;

template <typename scalar_t>
__global__ void roi_pool_forward_kernel(
    const scalar_t* __restrict__ input, const scalar_t* __restrict__ boxes,
    const int64_t* __restrict__ batch, int64_t total, RoiParams p, scalar_t* __restrict__ out,
    int64_t* __restrict__ argmax) {
  using G = at::opmath_type<scalar_t>;
  // -max of G (std::numeric_limits is host-only without --expt-relaxed-constexpr)
  const G lowest =
      sizeof(G) == sizeof(double) ? static_cast<G>(-DBL_MAX) : static_cast<G>(-FLT_MAX);
  FRCNN_GRID_STRIDE_LOOP(i, total) {
    int64_t k, c, ph, pw;
    pooled_index(i, p.channels_last, p.channels, p.pooled_h, p.pooled_w, k, c, ph, pw);
    const scalar_t* b = boxes + 5 * k;
    const int64_t n = batch[k];
    const PoolRoi r = pool_roi<G>(
        static_cast<G>(b[1]), static_cast<G>(b[2]), static_cast<G>(b[3]), static_cast<G>(b[4]),
        static_cast<G>(p.spatial_scale));
    const CellRange y = pool_bin<G>(ph, p.pooled_h, r.y_start, r.height, p.height);
    const CellRange x = pool_bin<G>(pw, p.pooled_w, r.x_start, r.width, p.width);
    // A bad batch index was rejected on the host; the bound here only guarantees no stray read.
    const bool empty =
        !r.valid || n < 0 || n >= p.batch_size || y.end <= y.begin || x.end <= x.begin;
    G m = empty ? G(0) : lowest;
    int64_t arg = -1;
    if (!empty) {
      for (int64_t h = y.begin; h < y.end; ++h) {
        for (int64_t w = x.begin; w < x.end; ++w) {
          const G v = static_cast<G>(
              input[nchw_offset(p.channels_last, n, c, h, w, p.channels, p.height, p.width)]);
          if (v > m) {
            m = v;
            arg = h * p.width + w;
          }
        }
      }
    }
    out[i] = static_cast<scalar_t>(m);
    if (argmax != nullptr) argmax[i] = arg;
  }
}

// Gradient element i (in the layout of grad/argmax) -> (k, c); bins are not needed.
FRCNN_HOST_DEVICE void grad_kc(
    int64_t i, bool channels_last, int64_t channels, int64_t bins, int64_t& k, int64_t& c) {
  if (channels_last) {
    c = i % channels;
    k = i / channels / bins;
  } else {
    c = (i / bins) % channels;
    k = i / bins / channels;
  }
}

template <typename scalar_t>
__global__ void roi_pool_backward_atomic_kernel(
    const scalar_t* __restrict__ grad, const int64_t* __restrict__ argmax,
    const int64_t* __restrict__ batch, int64_t total, RoiParams p,
    at::opmath_type<scalar_t>* __restrict__ grad_input) {
  using G = at::opmath_type<scalar_t>;
  const int64_t plane = p.height * p.width, bins = p.bins();
  FRCNN_GRID_STRIDE_LOOP(i, total) {
    const int64_t a = argmax[i];
    int64_t k, c;
    grad_kc(i, p.channels_last, p.channels, bins, k, c);
    const int64_t n = batch[k];
    if (a < 0 || a >= plane || n < 0 || n >= p.batch_size) continue;
    atomicAdd(
        grad_input +
            nchw_offset(
                p.channels_last, n, c, a / p.width, a % p.width, p.channels, p.height, p.width),
        static_cast<G>(grad[i]));
  }
}

template <typename scalar_t>
__global__ void roi_pool_backward_deterministic_kernel(
    const scalar_t* __restrict__ grad, const int64_t* __restrict__ argmax,
    const int64_t* __restrict__ order, const int64_t* __restrict__ offsets, RoiParams p,
    int64_t chunk, at::opmath_type<scalar_t>* __restrict__ grad_input) {
  using G = at::opmath_type<scalar_t>;
  const int64_t plane = p.height * p.width, bins = p.bins();
  const int64_t chunks = (p.channels + chunk - 1) / chunk;
  for (int64_t task = blockIdx.x; task < p.batch_size * chunks; task += gridDim.x) {
    const auto [n, c0, nc] = det_task(task, chunks, chunk, p.channels);
    for (int64_t i = offsets[n]; i < offsets[n + 1]; ++i) {
      const int64_t k = order[i];
      for (int64_t it = threadIdx.x; it < nc * bins; it += blockDim.x) {
        // Channels fastest for NHWC (neighbouring threads read neighbouring addresses).
        const int64_t c = c0 + (p.channels_last ? it % nc : it / bins);
        const int64_t b = p.channels_last ? it / nc : it % bins;
        // Element (k, c, bin j) of grad/argmax.
        const int64_t base =
            p.channels_last ? k * bins * p.channels + c : (k * p.channels + c) * bins;
        const int64_t step = p.channels_last ? p.channels : 1;
        const int64_t a = argmax[base + b * step];
        if (a < 0 || a >= plane) continue;
        bool leader = true;
        for (int64_t j = 0; j < b && leader; ++j) leader = argmax[base + j * step] != a;
        if (!leader) continue;
        G* dst =
            grad_input +
            nchw_offset(
                p.channels_last, n, c, a / p.width, a % p.width, p.channels, p.height, p.width);
        G acc = *dst;
        for (int64_t j = b; j < bins; ++j) {
          if (argmax[base + j * step] == a) acc += static_cast<G>(grad[base + j * step]);
        }
        *dst = acc;
      }
      // The next RoI may route its bins to the same cells through other threads.
      __syncthreads();
    }
  }
}

// `argmax` undefined: inference. Outputs keep the input's layout.
void forward_cuda(
    const at::Tensor& input_in, const at::Tensor& boxes_in, double spatial_scale, int64_t pooled_h,
    int64_t pooled_w, const at::Tensor& out, const at::Tensor& argmax) {
  const bool nhwc = use_channels_last(input_in);
  const at::Tensor input = input_in.contiguous(memory_format_of(nhwc));
  const at::Tensor boxes = boxes_in.contiguous();
  const RoiParams p = pool_params(
      input.size(0), input.size(1), input.size(2), input.size(3), spatial_scale, pooled_h, pooled_w,
      nhwc);
  if (out.numel() == 0) return;
  const at::Tensor batch = checked_batch_index(boxes, p.batch_size);
  const int64_t total = out.numel();
  const cudaStream_t stream = current_stream();
  FRCNN_DISPATCH_FLOATING_TYPES(input.scalar_type(), "roi_pool_cuda", [&] {
    FRCNN_LAUNCH(roi_pool_forward_kernel<scalar_t>, blocks_for(total), kThreadsPerBlock, 0, stream)(
        input.const_data_ptr<scalar_t>(), boxes.const_data_ptr<scalar_t>(),
        batch.const_data_ptr<int64_t>(), total, p, out.mutable_data_ptr<scalar_t>(),
        argmax.defined() ? argmax.mutable_data_ptr<int64_t>() : nullptr);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

using Entries = RoiPoolEntries<forward_cuda>;

at::Tensor roi_pool_backward_cuda(
    const at::Tensor& grad_in, const at::Tensor& boxes_in, const at::Tensor& argmax_in,
    int64_t batch_size, int64_t channels, int64_t height, int64_t width, bool channels_last,
    bool deterministic) {
  check_roi_pool_backward_inputs(grad_in, boxes_in, argmax_in, batch_size, channels, height, width);
  const DeviceGuard guard(grad_in.device());
  const auto fmt = memory_format_of(channels_last);
  const at::Tensor grad = grad_in.contiguous(fmt);
  const at::Tensor argmax = argmax_in.contiguous(fmt);
  const at::Tensor boxes = boxes_in.contiguous();
  const auto dtype = grad.scalar_type();
  at::Tensor acc = zeroed_grad_map({batch_size, channels, height, width}, grad, fmt);
  if (grad.numel() == 0 || acc.numel() == 0) return finish_grad_map(acc, dtype);
  const int64_t plane = height * width;
  const at::Tensor batch = checked_batch_index(boxes, batch_size, at::Tensor(), 0, argmax, plane);
  // The op gets no spatial_scale: the argmax already says where each bin's max was.
  const RoiParams p = pool_params(
      batch_size, channels, height, width, 1.0, grad.size(2), grad.size(3), channels_last);
  const int64_t bins = p.bins();
  const cudaStream_t stream = current_stream();
  if (deterministic || at::globalContext().deterministicAlgorithms()) {
    const DeviceRoisByImage g = group_by_image_device(batch, batch_size);
    // About one item (channel, bin) per thread and RoI, while keeping enough blocks.
    int64_t chunk = std::max<int64_t>(1, kDetThreads / bins);
    while (chunk > 1 && batch_size * ((channels + chunk - 1) / chunk) < 512) chunk /= 2;
    const int64_t tasks = batch_size * ((channels + chunk - 1) / chunk);
    const unsigned int grid = static_cast<unsigned int>(std::min<int64_t>(tasks, max_grid_dim()));
    FRCNN_DISPATCH_FLOATING_TYPES(dtype, "roi_pool_backward_cuda", [&] {
      using G = at::opmath_type<scalar_t>;
      FRCNN_LAUNCH(roi_pool_backward_deterministic_kernel<scalar_t>, grid, kDetThreads, 0, stream)(
          grad.const_data_ptr<scalar_t>(), argmax.const_data_ptr<int64_t>(),
          g.order.const_data_ptr<int64_t>(), g.offsets.const_data_ptr<int64_t>(), p, chunk,
          acc.mutable_data_ptr<G>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  } else {
    const int64_t total = grad.numel();
    FRCNN_DISPATCH_FLOATING_TYPES(dtype, "roi_pool_backward_cuda", [&] {
      using G = at::opmath_type<scalar_t>;
      FRCNN_LAUNCH(
          roi_pool_backward_atomic_kernel<scalar_t>, blocks_for(total), kThreadsPerBlock, 0,
          stream)(
          grad.const_data_ptr<scalar_t>(), argmax.const_data_ptr<int64_t>(),
          batch.const_data_ptr<int64_t>(), total, p, acc.mutable_data_ptr<G>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return finish_grad_map(acc, dtype);
}

}  // namespace

FRCNN_CUDA_LIBRARY_IMPL(m) {
  m.impl("roi_pool", &Entries::roi_pool);
  m.impl("roi_pool_inference", &Entries::roi_pool_inference);
  m.impl("_roi_pool_backward", &roi_pool_backward_cuda);
}

}  // namespace frcnn_fast
