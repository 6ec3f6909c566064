#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "../common/roi_checks.h"
#include "../common/roi_index.h"
#include "../common/roi_layout.h"
#include "../common/roi_math.h"
#include "../common/roi_params.h"
#include "../roi_align.h"
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
// once. Per element, each layout keeps the operation order of its CUDA kernel.

namespace frcnn_fast {
namespace {

// One feature map: the pooled levels of a multi-level call, or the single input.
struct Level {
  int64_t height, width;
  double scale;
};

template <typename G>
struct SampleTable {
  std::vector<int64_t> offset;   // 4 per sample: cell y * W + x of each neighbour
  std::vector<G> weight;         // 4 per sample
  std::vector<int64_t> bin_end;  // samples of bin b: [bin_end[b-1], bin_end[b])
  std::vector<AxisSample<G>> ys, xs;
  G count = G(1);

  int64_t begin(int64_t bin) const { return bin == 0 ? 0 : bin_end[bin - 1]; }
};

// Samples of RoI `coords` (x1, y1, x2, y2) on a map of `lv`'s size. Invalid samples are left
// out (they contribute 0); `count` still includes them, as in torchvision.
template <typename G, typename scalar_t>
void build_table(
    const scalar_t* coords, const Level& lv, int64_t pooled_h, int64_t pooled_w,
    int64_t sampling_ratio, bool aligned, SampleTable<G>& t) {
  const AlignRoi<G> r = align_roi<G>(
      static_cast<G>(coords[0]), static_cast<G>(coords[1]), static_cast<G>(coords[2]),
      static_cast<G>(coords[3]), static_cast<G>(lv.scale), pooled_h, pooled_w, sampling_ratio,
      aligned);
  t.count = r.count;
  t.ys.resize(pooled_h * r.grid_h);
  t.xs.resize(pooled_w * r.grid_w);
  for (int64_t p = 0; p < pooled_h; ++p)
    for (int64_t i = 0; i < r.grid_h; ++i)
      t.ys[p * r.grid_h + i] =
          axis_sample(sample_coord(r.y_start, r.bin_h, p, i, r.grid_h), lv.height);
  for (int64_t p = 0; p < pooled_w; ++p)
    for (int64_t i = 0; i < r.grid_w; ++i)
      t.xs[p * r.grid_w + i] =
          axis_sample(sample_coord(r.x_start, r.bin_w, p, i, r.grid_w), lv.width);
  t.offset.clear();
  t.weight.clear();
  t.bin_end.resize(pooled_h * pooled_w);
  const int64_t w = lv.width;
  for (int64_t ph = 0; ph < pooled_h; ++ph) {
    for (int64_t pw = 0; pw < pooled_w; ++pw) {
      for (int64_t iy = 0; iy < r.grid_h; ++iy) {
        const AxisSample<G>& y = t.ys[ph * r.grid_h + iy];
        if (!y.valid) continue;
        for (int64_t ix = 0; ix < r.grid_w; ++ix) {
          const AxisSample<G>& x = t.xs[pw * r.grid_w + ix];
          if (!x.valid) continue;
          t.offset.insert(
              t.offset.end(),
              {y.low * w + x.low, y.low * w + x.high, y.high * w + x.low, y.high * w + x.high});
          t.weight.insert(
              t.weight.end(),
              {y.w_low * x.w_low, y.w_low * x.w_high, y.w_high * x.w_low, y.w_high * x.w_high});
        }
      }
      t.bin_end[ph * pooled_w + pw] = static_cast<int64_t>(t.offset.size() / 4);
    }
  }
}

// One bin of one RoI for every channel of a channels-last image, in the NCHW kernels' order
// of operations: the sum adds each sample's weighted sum of its four neighbours (NHWC adds
// the neighbours one at a time), so an NCHW input pooled here gives the per-plane loop's
// bits. The loop over contiguous channels vectorises (a sample's weights are the same for
// every channel).
template <typename G, typename scalar_t>
inline void grouped_bin_sums(
    const scalar_t* image, int64_t c_n, const int64_t* off, const G* wt, int64_t s0, int64_t s1,
    G* __restrict a) {
  for (int64_t c = 0; c < c_n; ++c) a[c] = G(0);
  for (int64_t s = s0; s < s1; ++s) {
    const int64_t* q = off + 4 * s;
    const G* w = wt + 4 * s;
    const scalar_t* __restrict x0 = image + q[0] * c_n;
    const scalar_t* __restrict x1 = image + q[1] * c_n;
    const scalar_t* __restrict x2 = image + q[2] * c_n;
    const scalar_t* __restrict x3 = image + q[3] * c_n;
    const G w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
    for (int64_t c = 0; c < c_n; ++c) {
      a[c] += w0 * static_cast<G>(x0[c]) + w1 * static_cast<G>(x1[c]) + w2 * static_cast<G>(x2[c]) +
          w3 * static_cast<G>(x3[c]);
    }
  }
}

// `maps` are channels-last whatever the input's layout (an NCHW input is copied once: 10 MB
// for a VGG conv5 map, small next to the K*C*PH*PW output). `nchw_out`: the output is NCHW,
// each RoI's [bin][channel] results go through a cache-sized tile and are written transposed.
template <typename scalar_t>
void forward(
    const std::vector<const scalar_t*>& maps, const std::vector<Level>& levels_info,
    const scalar_t* boxes, const std::vector<int64_t>& batch_index,
    const std::vector<int64_t>& level_of, const RoiParams& g, scalar_t* out) {
  using G = at::opmath_type<scalar_t>;
  const int64_t k_total = static_cast<int64_t>(batch_index.size());
  const int64_t c_n = g.channels;
  const int64_t bins = g.bins();
  const bool nchw_out = !g.channels_last;
  parallel_for_work(k_total, forward_grain(c_n, bins), [&](int64_t k0, int64_t k1) {
    SampleTable<G> t;
    std::vector<G> tile(nchw_out ? bins * c_n : c_n);
    for (int64_t k = k0; k < k1; ++k) {
      const int64_t l = level_of.empty() ? 0 : level_of[k];
      const Level& lv = levels_info[l];
      build_table(boxes + 5 * k + 1, lv, g.pooled_h, g.pooled_w, g.sampling_ratio, g.aligned, t);
      const int64_t plane = lv.height * lv.width;
      const scalar_t* image = maps[l] + batch_index[k] * c_n * plane;
      const int64_t* off = t.offset.data();
      const G* wt = t.weight.data();
      if (nchw_out) {
        for (int64_t b = 0; b < bins; ++b) {
          grouped_bin_sums(image, c_n, off, wt, t.begin(b), t.bin_end[b], tile.data() + b * c_n);
        }
        scalar_t* __restrict o = out + k * c_n * bins;
        const G* __restrict a = tile.data();
        for (int64_t c = 0; c < c_n; ++c)
          for (int64_t b = 0; b < bins; ++b)
            o[c * bins + b] = static_cast<scalar_t>(a[b * c_n + c] / t.count);
      } else {
        G* __restrict a = tile.data();
        for (int64_t b = 0; b < bins; ++b) {
          for (int64_t c = 0; c < c_n; ++c) a[c] = G(0);
          for (int64_t s = t.begin(b); s < t.bin_end[b]; ++s) {
            for (int j = 0; j < 4; ++j) {
              const scalar_t* __restrict x = image + off[4 * s + j] * c_n;
              const G w = wt[4 * s + j];
              for (int64_t c = 0; c < c_n; ++c) a[c] += w * static_cast<G>(x[c]);
            }
          }
          scalar_t* __restrict o = out + (k * bins + b) * c_n;
          for (int64_t c = 0; c < c_n; ++c) o[c] = static_cast<scalar_t>(a[c] / t.count);
        }
      }
    }
  });
}

// grads[l] (accumulation type, zeroed, channels-last whatever the layout) += the RoIs'
// contributions. Each gradient cell sums its contributions in (RoI, bin, sample, neighbour)
// order in either layout, the order of the per-plane NCHW loop this replaced.
template <typename scalar_t>
void backward(
    const scalar_t* grad, const std::vector<at::opmath_type<scalar_t>*>& grads,
    const std::vector<Level>& levels_info, const scalar_t* boxes,
    const std::vector<int64_t>& batch_index, const std::vector<int64_t>& level_of,
    const RoiParams& g) {
  using G = at::opmath_type<scalar_t>;
  const int64_t c_n = g.channels;
  const int64_t bins = g.bins();
  const bool channels_last = g.channels_last;
  const RoisByImage by_image = group_by_image(batch_index, g.batch_size);
  const int64_t block = channel_block(c_n, g.batch_size);
  const int64_t blocks = (c_n + block - 1) / block;
  const int64_t grain =
      backward_grain(static_cast<int64_t>(batch_index.size()), g.batch_size, bins, block);
  parallel_for_work(g.batch_size * blocks, grain, [&](int64_t t0, int64_t t1) {
    SampleTable<G> t;
    // One RoI's output gradient for the task's channels, [bin][channel], divided by the count.
    std::vector<G> gbin(bins * block);
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t n = task / blocks;
      const int64_t c0 = (task % blocks) * block;
      const int64_t c1 = c0 + block < c_n ? c0 + block : c_n;
      const int64_t width = c1 - c0;
      for (int64_t i = by_image.offsets[n]; i < by_image.offsets[n + 1]; ++i) {
        const int64_t k = by_image.order[i];
        const int64_t l = level_of.empty() ? 0 : level_of[k];
        const Level& lv = levels_info[l];
        build_table(boxes + 5 * k + 1, lv, g.pooled_h, g.pooled_w, g.sampling_ratio, g.aligned, t);
        const int64_t plane = lv.height * lv.width;
        G* image = grads[l] + n * c_n * plane;
        const int64_t* off = t.offset.data();
        const G* wt = t.weight.data();
        G* __restrict gb = gbin.data();
        if (channels_last) {
          for (int64_t b = 0; b < bins; ++b) {
            const scalar_t* gk = grad + (k * bins + b) * c_n + c0;
            for (int64_t c = 0; c < width; ++c) gb[b * width + c] = static_cast<G>(gk[c]) / t.count;
          }
        } else {
          for (int64_t c = 0; c < width; ++c) {
            const scalar_t* gk = grad + (k * c_n + c0 + c) * bins;
            for (int64_t b = 0; b < bins; ++b) gb[b * width + c] = static_cast<G>(gk[b]) / t.count;
          }
        }
        for (int64_t b = 0; b < bins; ++b) {
          const G* __restrict gv = gb + b * width;
          for (int64_t s = t.begin(b); s < t.bin_end[b]; ++s) {
            for (int j = 0; j < 4; ++j) {
              G* __restrict x = image + off[4 * s + j] * c_n + c0;
              const G w = wt[4 * s + j];
              for (int64_t c = 0; c < width; ++c) x[c] += w * gv[c];
            }
          }
        }
      }
    }
  });
}

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
    forward(
        maps, info, boxes.const_data_ptr<scalar_t>(), batch, level_of, g,
        out.mutable_data_ptr<scalar_t>());
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
  const at::Tensor grad = grad_in.contiguous(memory_format_of(channels_last));
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
      backward(
          grad.const_data_ptr<scalar_t>(), ptrs, info, boxes.const_data_ptr<scalar_t>(), batch,
          level_of, g);
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
