#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <tuple>
#include <type_traits>
#include <vector>

#include "../common/roi_checks.h"
#include "../common/roi_index.h"
#include "../common/roi_layout.h"
#include "../common/roi_math.h"
#include "../common/roi_params.h"
#include "../roi_pool.h"
#include "cpu_isa.h"
#include "layout_copy.h"
#include "roi_tasks.h"

// RoI max pooling on the CPU. Forward splits RoIs across threads and always runs on a
// channels-last view (an NCHW input is copied once): a running max per channel over each bin's
// cells is a loop over contiguous channels that vectorises, several times faster than scanning
// each channel plane's cells with a data-dependent branch (torchvision's loop). Backward routes
// each bin's gradient to its argmax cell; threads own (image, block of channels) gradient planes
// and visit the image's RoIs in index order, so sums are the same bits for any thread count.
// roi_pool_inference runs the same forward without the argmax: the same max, compared in the
// same order, so the same output bits. This file holds the entries; the loops are in
// roi_pool_loops.h, compiled once per instruction set (cpu_isa.h).

namespace frcnn_fast {
namespace {

// Strides, in elements, of the pooled gradient [K, C, PH*PW]. It is read in whichever layout
// it comes: autograd hands a channels-last op an NCHW gradient when the next layer flattens
// the pooled features, and a layout copy of it would cost as much as the backward itself.
struct GradStrides {
  int64_t roi, channel, bin;
};

// The pooled gradient as it comes when it is NCHW or channels-last (else copied to `fmt`), and
// its strides. From the layout, not grad.stride(): a size-1 dimension may have any stride.
struct PooledGrad {
  at::Tensor tensor;
  GradStrides strides;
};

inline PooledGrad pooled_grad_as_given(const at::Tensor& grad_in, at::MemoryFormat fmt) {
  const at::Tensor grad =
      grad_in.is_contiguous() || grad_in.is_contiguous(at::MemoryFormat::ChannelsLast)
      ? grad_in
      : grad_in.contiguous(fmt);
  const int64_t channels = grad.size(1), bins = grad.size(2) * grad.size(3);
  const GradStrides strides = grad.is_contiguous() ? GradStrides{channels * bins, bins, 1}
                                                   : GradStrides{channels * bins, 1, channels};
  return {grad, strides};
}

#define FRCNN_FAST_LOOPS "roi_pool_loops.h"
#include "cpu_isa_copies.h"

// Both layouts run the vectorised channels-last kernel: an NCHW input is copied to
// channels-last once (one pass over the map, small next to scanning K*C*PH*PW bins) and the
// result is written NCHW. Outputs keep the input's layout. `argmax` undefined: inference.
void forward(
    const at::Tensor& input_in, const at::Tensor& boxes_in, double spatial_scale, int64_t pooled_h,
    int64_t pooled_w, const at::Tensor& out, const at::Tensor& argmax) {
  const at::Tensor input = input_in.contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor boxes = boxes_in.contiguous();
  const RoiParams p = pool_params(
      input.size(0), input.size(1), input.size(2), input.size(3), spatial_scale, pooled_h, pooled_w,
      use_channels_last(input_in));
  // Checked even when there is nothing to pool: a bad index is an error whatever C is.
  const std::vector<int64_t> batch = roi_batch_indices(boxes, p.batch_size);
  if (out.numel() == 0) return;
  const bool small_plane = p.height * p.width <= std::numeric_limits<int32_t>::max();
  FRCNN_DISPATCH_FLOATING_TYPES(input.scalar_type(), "roi_pool_cpu", [&] {
    const auto run = [&](auto index_tag, auto with_argmax) {
      FRCNN_FAST_WITH_CPU_ISA(
          isa::forward_nhwc<scalar_t, decltype(index_tag), decltype(with_argmax)::value>(
              input.const_data_ptr<scalar_t>(), boxes.const_data_ptr<scalar_t>(), batch, p,
              !p.channels_last, out.mutable_data_ptr<scalar_t>(),
              argmax.defined() ? argmax.mutable_data_ptr<int64_t>() : nullptr));
    };
    if (!argmax.defined()) {
      run(int32_t{}, std::false_type{});  // no cell index is kept: its width is moot
    } else if (small_plane) {
      run(int32_t{}, std::true_type{});
    } else {
      run(int64_t{}, std::true_type{});
    }
  });
}

using Entries = RoiPoolEntries<forward>;

at::Tensor roi_pool_backward_cpu(
    const at::Tensor& grad_in, const at::Tensor& boxes_in, const at::Tensor& argmax_in,
    int64_t batch_size, int64_t channels, int64_t height, int64_t width, bool channels_last,
    bool /*deterministic: the CPU backward always is*/) {
  check_roi_pool_backward_inputs(grad_in, boxes_in, argmax_in, batch_size, channels, height, width);
  const auto fmt = memory_format_of(channels_last);
  // The gradient as it comes when it is NCHW or channels-last, the argmax in the layout the
  // forward wrote it.
  const PooledGrad pooled = pooled_grad_as_given(grad_in, fmt);
  const at::Tensor& grad = pooled.tensor;
  const at::Tensor argmax = argmax_in.contiguous(fmt);
  const at::Tensor boxes = boxes_in.contiguous();
  const std::vector<int64_t> batch = roi_batch_indices(boxes, batch_size);
  const auto dtype = grad.scalar_type();
  at::Tensor acc = zeroed_grad_map({batch_size, channels, height, width}, grad, fmt);
  if (grad.numel() > 0 && acc.numel() > 0) {
    // The op gets no spatial_scale: the argmax already says where each bin's max was.
    const RoiParams p = pool_params(
        batch_size, channels, height, width, 1.0, grad.size(2), grad.size(3), channels_last);
    FRCNN_DISPATCH_FLOATING_TYPES(dtype, "roi_pool_backward_cpu", [&] {
      using G = at::opmath_type<scalar_t>;
      FRCNN_FAST_WITH_CPU_ISA(
          isa::backward(
              grad.const_data_ptr<scalar_t>(), pooled.strides, argmax.const_data_ptr<int64_t>(),
              batch, p, acc.mutable_data_ptr<G>()));
    });
  }
  return finish_grad_map(acc, dtype);
}

// The gradient of roi_pool_inference: the argmax recomputed from the input (see
// backward_recompute), the result in the input's layout.
at::Tensor roi_pool_backward_recompute_cpu(
    const at::Tensor& grad_in, const at::Tensor& input_in, const at::Tensor& boxes_in,
    double spatial_scale) {
  check_roi_pool_backward_recompute_inputs(grad_in, input_in, boxes_in, spatial_scale);
  const bool channels_last = use_channels_last(input_in);
  const PooledGrad pooled = pooled_grad_as_given(grad_in, memory_format_of(channels_last));
  const at::Tensor& grad = pooled.tensor;
  const at::Tensor input = input_in.contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor boxes = boxes_in.contiguous();
  const RoiParams p = pool_params(
      input.size(0), input.size(1), input.size(2), input.size(3), spatial_scale, grad.size(2),
      grad.size(3), channels_last);
  const std::vector<int64_t> batch = roi_batch_indices(boxes, p.batch_size);
  const auto dtype = grad.scalar_type();
  // Summed channels-last (see backward_recompute), returned in the input's layout.
  at::Tensor acc = zeroed_grad_map(input.sizes(), grad, at::MemoryFormat::ChannelsLast);
  if (grad.numel() > 0 && acc.numel() > 0) {
    const bool small_plane = p.height * p.width <= std::numeric_limits<int32_t>::max();
    FRCNN_DISPATCH_FLOATING_TYPES(dtype, "roi_pool_backward_recompute_cpu", [&] {
      using G = at::opmath_type<scalar_t>;
      const auto run = [&](auto index_tag) {
        FRCNN_FAST_WITH_CPU_ISA(
            isa::backward_recompute<scalar_t, decltype(index_tag)>(
                input.const_data_ptr<scalar_t>(), boxes.const_data_ptr<scalar_t>(),
                grad.const_data_ptr<scalar_t>(), pooled.strides, batch, p,
                acc.mutable_data_ptr<G>()));
      };
      if (small_plane) {
        run(int32_t{});
      } else {
        run(int64_t{});
      }
    });
  }
  return finish_grad_map(channels_last ? acc : channels_last_to_nchw(acc), dtype);
}

}  // namespace

TORCH_LIBRARY_IMPL(frcnn_fast, CPU, m) {
  m.impl("roi_pool", &Entries::roi_pool);
  m.impl("roi_pool_inference", &Entries::roi_pool_inference);
  m.impl("_roi_pool_backward", &roi_pool_backward_cpu);
  m.impl("_roi_pool_backward_recompute", &roi_pool_backward_recompute_cpu);
}

}  // namespace frcnn_fast
