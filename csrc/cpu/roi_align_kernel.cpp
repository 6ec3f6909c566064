#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <type_traits>
#include <vector>

#include "../common/roi_checks.h"
#include "../common/roi_index.h"
#include "../common/roi_layout.h"
#include "../common/roi_math.h"
#include "../common/roi_params.h"
#include "../roi_align.h"
#include "cpu_isa.h"
#include "layout_copy.h"
#include "roi_tasks.h"

// RoIAlign on the CPU. Every kernel first turns a RoI into a table of bilinear samples
// (four cell offsets and four weights each, grouped by bin); the table depends only on the
// RoI's geometry, so it is built once per RoI and applied to many channels.
//
// Forward: RoIs are split across threads; each writes only its own output rows.
// Backward: threads own (image, block of channels) gradient planes and visit that image's
// RoIs in index order. No two threads write the same element and each element sums its
// contributions in one fixed order, so the result is the same bits for any thread count and
// run, without atomics or per-RoI gradient buffers.
//
// Both layouts run channels-last: a sample's weights are the same for every channel, so each
// sample is applied to a contiguous run of channels, a loop that vectorises. An NCHW input is
// copied to channels-last once (the map is small next to the pooled output), its output
// written through a per-RoI transpose tile, its gradient summed channels-last and converted
// once. Per element, each layout keeps the operation order of its CUDA kernel. This file holds
// the entries; the loops are in roi_align_loops.h, compiled once per instruction set
// (cpu_isa.h).

namespace frcnn_fast {
namespace {

// One feature map: the pooled levels of a multi-level call, or the single input.
struct Level {
  int64_t height, width;
  double scale;
};

#define FRCNN_FAST_LOOPS "roi_align_loops.h"
#include "cpu_isa_copies.h"

at::Tensor multilevel_forward(
    at::TensorList inputs_in, const at::Tensor& boxes_in, const at::Tensor& levels,
    c10::ArrayRef<double> scales, int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio,
    bool aligned) {
  const bool nhwc = use_channels_last(inputs_in[0]);
  std::vector<at::Tensor> inputs;
  std::vector<Level> info;
  for (size_t l = 0; l < inputs_in.size(); ++l) {
    inputs.push_back(inputs_in[l].contiguous(at::MemoryFormat::ChannelsLast));
    info.push_back({inputs_in[l].size(2), inputs_in[l].size(3), scales[l]});
  }
  const at::Tensor boxes = boxes_in.contiguous();
  const int64_t n = inputs[0].size(0), c = inputs[0].size(1);
  const std::vector<int64_t> batch = roi_batch_indices(boxes, n);
  const std::vector<int64_t> level_of = roi_levels(levels, static_cast<int64_t>(inputs.size()));
  at::Tensor out =
      pooled_output(inputs_in[0], boxes, pooled_h, pooled_w, inputs_in[0].scalar_type());
  if (out.numel() == 0) return out;
  const RoiParams g = align_params(n, c, pooled_h, pooled_w, sampling_ratio, aligned, nhwc);
  FRCNN_DISPATCH_FLOATING_TYPES(boxes.scalar_type(), "roi_align_cpu", [&] {
    std::vector<const scalar_t*> maps;
    for (const auto& x : inputs) maps.push_back(x.const_data_ptr<scalar_t>());
    FRCNN_FAST_WITH_CPU_ISA(
        isa::forward(
            maps, info, boxes.const_data_ptr<scalar_t>(), batch, level_of, g,
            out.mutable_data_ptr<scalar_t>()));
  });
  return out;
}

std::vector<at::Tensor> multilevel_backward(
    const at::Tensor& grad_in, const at::Tensor& boxes_in, const at::Tensor& levels,
    c10::ArrayRef<double> scales, int64_t pooled_h, int64_t pooled_w, int64_t batch_size,
    int64_t channels, c10::ArrayRef<int64_t> heights, c10::ArrayRef<int64_t> widths,
    int64_t sampling_ratio, bool aligned, bool channels_last,
    bool /*deterministic: the CPU backward always is (see the top of this file)*/) {
  std::vector<Level> info;
  for (size_t l = 0; l < scales.size(); ++l) info.push_back({heights[l], widths[l], scales[l]});
  const at::Tensor boxes = boxes_in.contiguous();
  // The gradient as it comes when it is NCHW or channels-last: autograd hands a channels-last
  // op an NCHW gradient when the next layer flattens the pooled features, and copying 200 MB
  // into the input's layout (fresh pages included) took longer than the backward's own loops.
  const at::Tensor grad =
      grad_in.is_contiguous() || grad_in.is_contiguous(at::MemoryFormat::ChannelsLast)
      ? grad_in
      : grad_in.contiguous(memory_format_of(channels_last));
  const bool grad_channels_last = !grad.is_contiguous();
  const std::vector<int64_t> batch = roi_batch_indices(boxes, batch_size);
  const std::vector<int64_t> level_of = roi_levels(levels, static_cast<int64_t>(scales.size()));
  const auto dtype = grad.scalar_type();
  std::vector<at::Tensor> acc;
  for (size_t l = 0; l < scales.size(); ++l) {
    acc.push_back(zeroed_grad_map(
        {batch_size, channels, heights[l], widths[l]}, grad, at::MemoryFormat::ChannelsLast));
  }
  if (grad.numel() > 0) {
    const RoiParams g = align_params(
        batch_size, channels, pooled_h, pooled_w, sampling_ratio, aligned, channels_last);
    FRCNN_DISPATCH_FLOATING_TYPES(dtype, "roi_align_backward_cpu", [&] {
      using G = at::opmath_type<scalar_t>;
      std::vector<G*> ptrs;
      for (auto& a : acc) ptrs.push_back(a.mutable_data_ptr<G>());
      FRCNN_FAST_WITH_CPU_ISA(
          isa::backward(
              grad.const_data_ptr<scalar_t>(), ptrs, info, boxes.const_data_ptr<scalar_t>(), batch,
              level_of, g, grad_channels_last));
    });
  }
  for (auto& a : acc) a = finish_grad_map(channels_last ? a : channels_last_to_nchw(a), dtype);
  return acc;
}

using Entries = RoiAlignEntries<multilevel_forward, multilevel_backward>;

}  // namespace

TORCH_LIBRARY_IMPL(frcnn_fast, CPU, m) {
  m.impl("roi_align", &Entries::roi_align);
  m.impl("_roi_align_backward", &Entries::roi_align_backward);
  m.impl("multilevel_roi_align", &Entries::multilevel_roi_align);
  m.impl("_multilevel_roi_align_backward", &Entries::multilevel_roi_align_backward);
}

}  // namespace frcnn_fast
