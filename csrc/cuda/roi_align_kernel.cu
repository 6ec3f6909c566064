#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "../common/roi_checks.h"
#include "../common/roi_math.h"
#include "../roi_align.h"
#include "device.cuh"
#include "launch.cuh"
#include "roi_common.cuh"

// RoIAlign on CUDA, single- and multi-level (one op over all FPN levels: RoI k reads level
// levels[k]); geometry from common/roi_math.h, shared with the CPU kernels.
//
// Forward: one thread per output element (k, c, ph, pw) in the output's memory order. It sums
// its bin's bilinear samples in the CPU kernel's order and with its expression shapes (NCHW:
// the four corners summed, then added; NHWC: corner by corner), so emulated CUDA and CPU agree
// to the bit.
//
// Backward, atomic (default): one thread per gradient element scatters w * g / count to the
// four neighbours of each sample with atomicAdd into a float (double for float64) buffer;
// half types round once at the end. Fast; the order of the adds varies run to run.
//
// Backward, deterministic: a gather. One block owns the gradient planes of (image n, a few
// channels) at every level and visits image n's RoIs in index order, a barrier between RoIs.
// Per RoI, the block first tabulates, for every row y of the level, the range of the RoI's
// y-samples (flattened ph * grid_h + iy) whose bilinear neighbours include row y, and the same
// for columns (shared-memory atomicMin/atomicMax: the result is a set property, the same
// whatever the interleaving). Then each thread owns some (channel, cell) items of the RoI's
// footprint and walks ph, pw, iy, ix, corner -- within the tabulated ranges -- adding
// (wy * wx) * g[ph, pw] / count for every corner that is its cell. That is exactly the order in
// which the CPU kernel adds to that cell, so the result is the CPU's bits: the same run to run,
// for any grid, with no atomics on the gradient and no buffer beyond the float gradient.
// (Using the separability grad_in = Wy^T g Wx would be fewer flops but a different sum order.)

namespace frcnn_fast {
namespace {

constexpr int kMaxLevels = 8;
constexpr int kDetThreads = 128;
// Dynamic shared memory of the deterministic backward: 4 ints per row/column of the largest
// level. 48 KiB is available on every GPU without opting in.
constexpr int64_t kMaxDetSharedBytes = 48 * 1024;

// Feature maps (or gradient buffers) of up to kMaxLevels levels, passed by value.
template <typename P>
struct LevelSet {
  P data[kMaxLevels];
  int64_t height[kMaxLevels];
  int64_t width[kMaxLevels];
  double scale[kMaxLevels];
  int64_t count;
};

template <typename G, typename scalar_t>
FRCNN_HOST_DEVICE AlignRoi<G> roi_geometry(const scalar_t* b, double scale, const RoiParams& p) {
  return align_roi<G>(
      static_cast<G>(b[1]), static_cast<G>(b[2]), static_cast<G>(b[3]), static_cast<G>(b[4]),
      static_cast<G>(scale), p.pooled_h, p.pooled_w, p.sampling_ratio, p.aligned);
}

// visit(ys, xs) for every valid bilinear sample of bin (ph, pw), row by row: the CPU's order.
template <typename G, typename Visit>
__device__ __forceinline__ void for_each_sample(
    const AlignRoi<G>& r, int64_t ph, int64_t pw, int64_t height, int64_t width, Visit&& visit) {
  for (int64_t iy = 0; iy < r.grid_h; ++iy) {
    const AxisSample<G> ys =
        axis_sample(sample_coord(r.y_start, r.bin_h, ph, iy, r.grid_h), height);
    if (!ys.valid) continue;
    for (int64_t ix = 0; ix < r.grid_w; ++ix) {
      const AxisSample<G> xs =
          axis_sample(sample_coord(r.x_start, r.bin_w, pw, ix, r.grid_w), width);
      if (xs.valid) visit(ys, xs);
    }
  }
}

template <typename scalar_t>
__global__ void roi_align_forward_kernel(
    LevelSet<const scalar_t*> maps, const scalar_t* __restrict__ boxes,
    const int64_t* __restrict__ batch, const int64_t* __restrict__ levels, int64_t total,
    RoiParams p, scalar_t* __restrict__ out) {
  using G = at::opmath_type<scalar_t>;
  FRCNN_GRID_STRIDE_LOOP(i, total) {
    int64_t k, c, ph, pw;
    pooled_index(i, p.channels_last, p.channels, p.pooled_h, p.pooled_w, k, c, ph, pw);
    const int64_t n = batch[k], l = levels != nullptr ? levels[k] : 0;
    G sum = G(0);
    G count = G(1);
    // Indices were validated on the host; the bounds only guarantee no stray read.
    if (n >= 0 && n < p.batch_size && l >= 0 && l < maps.count) {
      const int64_t height = maps.height[l], width = maps.width[l];
      const AlignRoi<G> r = roi_geometry<G>(boxes + 5 * k, maps.scale[l], p);
      count = r.count;
      const scalar_t* x = maps.data[l];
      for_each_sample(
          r, ph, pw, height, width, [&](const AxisSample<G>& ys, const AxisSample<G>& xs) {
            const G w0 = ys.w_low * xs.w_low, w1 = ys.w_low * xs.w_high;
            const G w2 = ys.w_high * xs.w_low, w3 = ys.w_high * xs.w_high;
            const auto value_at = [&](int64_t yy, int64_t xx) {
              return static_cast<G>(
                  x[nchw_offset(p.channels_last, n, c, yy, xx, p.channels, height, width)]);
            };
            const G v0 = value_at(ys.low, xs.low), v1 = value_at(ys.low, xs.high);
            const G v2 = value_at(ys.high, xs.low), v3 = value_at(ys.high, xs.high);
            if (p.channels_last) {
              sum += w0 * v0;
              sum += w1 * v1;
              sum += w2 * v2;
              sum += w3 * v3;
            } else {
              sum += w0 * v0 + w1 * v1 + w2 * v2 + w3 * v3;
            }
          });
    }
    out[i] = static_cast<scalar_t>(sum / count);
  }
}

template <typename scalar_t>
__global__ void roi_align_backward_atomic_kernel(
    const scalar_t* __restrict__ grad, LevelSet<at::opmath_type<scalar_t>*> grads,
    const scalar_t* __restrict__ boxes, const int64_t* __restrict__ batch,
    const int64_t* __restrict__ levels, int64_t total, RoiParams p) {
  using G = at::opmath_type<scalar_t>;
  FRCNN_GRID_STRIDE_LOOP(i, total) {
    int64_t k, c, ph, pw;
    pooled_index(i, p.channels_last, p.channels, p.pooled_h, p.pooled_w, k, c, ph, pw);
    const int64_t n = batch[k], l = levels != nullptr ? levels[k] : 0;
    if (n < 0 || n >= p.batch_size || l < 0 || l >= grads.count) continue;
    const int64_t height = grads.height[l], width = grads.width[l];
    const AlignRoi<G> r = roi_geometry<G>(boxes + 5 * k, grads.scale[l], p);
    const G gv = static_cast<G>(grad[i]) / r.count;
    G* dst = grads.data[l];
    for_each_sample(
        r, ph, pw, height, width, [&](const AxisSample<G>& ys, const AxisSample<G>& xs) {
          const auto add = [&](int64_t yy, int64_t xx, G w) {
            atomicAdd(
                dst + nchw_offset(p.channels_last, n, c, yy, xx, p.channels, height, width),
                w * gv);
          };
          add(ys.low, xs.low, ys.w_low * xs.w_low);
          add(ys.low, xs.high, ys.w_low * xs.w_high);
          add(ys.high, xs.low, ys.w_high * xs.w_low);
          add(ys.high, xs.high, ys.w_high * xs.w_high);
        });
  }
}

template <typename scalar_t>
__global__ void roi_align_backward_deterministic_kernel(
    const scalar_t* __restrict__ grad, LevelSet<at::opmath_type<scalar_t>*> grads,
    const scalar_t* __restrict__ boxes, const int64_t* __restrict__ levels,
    const int64_t* __restrict__ order, const int64_t* __restrict__ offsets, RoiParams p,
    int64_t chunk) {
  using G = at::opmath_type<scalar_t>;
  FRCNN_DYNAMIC_SHARED(int, span);
  const int64_t chunks = (p.channels + chunk - 1) / chunk;
  for (int64_t task = blockIdx.x; task < p.batch_size * chunks; task += gridDim.x) {
    const auto [n, c0, nc] = det_task(task, chunks, chunk, p.channels);
    for (int64_t i = offsets[n]; i < offsets[n + 1]; ++i) {
      const int64_t k = order[i];
      const int64_t l = levels != nullptr ? levels[k] : 0;
      // Same for every thread of the block, so skipping keeps the barriers uniform.
      if (l < 0 || l >= grads.count) continue;
      const int64_t height = grads.height[l], width = grads.width[l];
      const AlignRoi<G> r = roi_geometry<G>(boxes + 5 * k, grads.scale[l], p);
      const int64_t gh = r.grid_h, gw = r.grid_w;
      const int64_t ny = p.pooled_h * gh, nx = p.pooled_w * gw;
      // [row_lo | row_hi] per row, [col_lo | col_hi] per column, then the footprint bounds.
      int* row_lo = span;
      int* row_hi = span + height;
      int* col_lo = span + 2 * height;
      int* col_hi = span + 2 * height + width;
      int* bound = span + 2 * (height + width);
      const int64_t cells = 2 * (height + width) + 4;
      for (int64_t t = threadIdx.x; t < cells; t += blockDim.x) {
        const bool lo = t < height || (t >= 2 * height && t < 2 * height + width) ||
            (t >= 2 * (height + width) && (t - 2 * (height + width)) % 2 == 0);
        span[t] = lo ? INT_MAX : INT_MIN;
      }
      __syncthreads();
      for (int64_t s = threadIdx.x; s < ny + nx; s += blockDim.x) {
        const bool is_y = s < ny;
        const int64_t u = is_y ? s : s - ny;
        const int64_t grid = is_y ? gh : gw;
        const AxisSample<G> a = is_y
            ? axis_sample(sample_coord(r.y_start, r.bin_h, u / grid, u % grid, grid), height)
            : axis_sample(sample_coord(r.x_start, r.bin_w, u / grid, u % grid, grid), width);
        if (!a.valid) continue;
        int* lo = is_y ? row_lo : col_lo;
        int* hi = is_y ? row_hi : col_hi;
        atomicMin(lo + a.low, static_cast<int>(u));
        atomicMax(hi + a.low, static_cast<int>(u + 1));
        atomicMin(lo + a.high, static_cast<int>(u));
        atomicMax(hi + a.high, static_cast<int>(u + 1));
        atomicMin(bound + (is_y ? 0 : 2), static_cast<int>(a.low));
        atomicMax(bound + (is_y ? 1 : 3), static_cast<int>(a.high + 1));
      }
      __syncthreads();
      const int64_t y0 = bound[0], x0 = bound[2];
      const int64_t rh = bound[1] > bound[0] ? bound[1] - bound[0] : 0;
      const int64_t rw = bound[3] > bound[2] ? bound[3] - bound[2] : 0;
      const int64_t items = nc * rh * rw;
      G* plane_base = grads.data[l];
      for (int64_t it = threadIdx.x; it < items; it += blockDim.x) {
        int64_t c, cell;
        if (p.channels_last) {  // channels fastest: neighbouring threads, neighbouring addresses
          c = c0 + it % nc;
          cell = it / nc;
        } else {
          cell = it % (rh * rw);
          c = c0 + it / (rh * rw);
        }
        const int64_t h = y0 + cell / rw, w = x0 + cell % rw;
        const int64_t slo = row_lo[h], shi = row_hi[h], tlo = col_lo[w], thi = col_hi[w];
        if (slo >= shi || tlo >= thi) continue;  // no sample of this RoI touches the cell
        G* dst = plane_base + nchw_offset(p.channels_last, n, c, h, w, p.channels, height, width);
        G acc = *dst;
        bool hit = false;
        for (int64_t ph = slo / gh; ph <= (shi - 1) / gh; ++ph) {
          for (int64_t pw = tlo / gw; pw <= (thi - 1) / gw; ++pw) {
            const G gv = static_cast<G>(grad[pooled_offset(
                             p.channels_last, k, c, ph, pw, p.channels, p.pooled_h, p.pooled_w)]) /
                r.count;
            const int64_t iy1 = (shi < (ph + 1) * gh ? shi : (ph + 1) * gh) - ph * gh;
            for (int64_t iy = (slo > ph * gh ? slo : ph * gh) - ph * gh; iy < iy1; ++iy) {
              const AxisSample<G> ys =
                  axis_sample(sample_coord(r.y_start, r.bin_h, ph, iy, gh), height);
              if (!ys.valid || (ys.low != h && ys.high != h)) continue;
              const int64_t ix1 = (thi < (pw + 1) * gw ? thi : (pw + 1) * gw) - pw * gw;
              for (int64_t ix = (tlo > pw * gw ? tlo : pw * gw) - pw * gw; ix < ix1; ++ix) {
                const AxisSample<G> xs =
                    axis_sample(sample_coord(r.x_start, r.bin_w, pw, ix, gw), width);
                if (!xs.valid || (xs.low != w && xs.high != w)) continue;
                // The four corners in the CPU's order; a clamped sample repeats a cell.
                if (ys.low == h && xs.low == w) acc += (ys.w_low * xs.w_low) * gv;
                if (ys.low == h && xs.high == w) acc += (ys.w_low * xs.w_high) * gv;
                if (ys.high == h && xs.low == w) acc += (ys.w_high * xs.w_low) * gv;
                if (ys.high == h && xs.high == w) acc += (ys.w_high * xs.w_high) * gv;
                hit = true;
              }
            }
          }
        }
        if (hit) *dst = acc;
      }
      // The next RoI rewrites the tables and reassigns cells to threads.
      __syncthreads();
    }
  }
}

at::Tensor multilevel_forward_cuda(
    at::TensorList inputs_in, const at::Tensor& boxes_in, const at::Tensor& levels_in,
    c10::ArrayRef<double> scales, int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio,
    bool aligned) {
  TORCH_CHECK(
      static_cast<int64_t>(inputs_in.size()) <= kMaxLevels, "inputs must hold at most ", kMaxLevels,
      " feature maps on CUDA, got ", inputs_in.size());
  const DeviceGuard guard(inputs_in[0].device());
  const bool nhwc = use_channels_last(inputs_in[0]);
  const auto fmt = memory_format_of(nhwc);
  std::vector<at::Tensor> inputs;
  for (const auto& x : inputs_in) inputs.push_back(x.contiguous(fmt));
  const at::Tensor boxes = boxes_in.contiguous();
  const int64_t n = inputs[0].size(0), c = inputs[0].size(1);
  at::Tensor out =
      pooled_output(inputs_in[0], boxes, pooled_h, pooled_w, inputs_in[0].scalar_type());
  if (out.numel() == 0) return out;
  const RoiParams p = align_params(n, c, pooled_h, pooled_w, sampling_ratio, aligned, nhwc);
  const int64_t num_levels = static_cast<int64_t>(inputs.size());
  const at::Tensor levels = levels_in.defined() ? levels_in.contiguous() : at::Tensor();
  const at::Tensor batch = checked_batch_index(boxes, n, levels, num_levels);
  const int64_t total = out.numel();
  const cudaStream_t stream = current_stream();
  FRCNN_DISPATCH_FLOATING_TYPES(boxes.scalar_type(), "roi_align_cuda", [&] {
    LevelSet<const scalar_t*> maps{};
    maps.count = num_levels;
    for (int64_t l = 0; l < num_levels; ++l) {
      maps.data[l] = inputs[l].const_data_ptr<scalar_t>();
      maps.height[l] = inputs[l].size(2);
      maps.width[l] = inputs[l].size(3);
      maps.scale[l] = scales[l];
    }
    FRCNN_LAUNCH(
        roi_align_forward_kernel<scalar_t>, blocks_for(total), kThreadsPerBlock, 0, stream)(
        maps, boxes.const_data_ptr<scalar_t>(), batch.const_data_ptr<int64_t>(),
        levels.defined() ? levels.const_data_ptr<int64_t>() : nullptr, total, p,
        out.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::vector<at::Tensor> multilevel_backward_cuda(
    const at::Tensor& grad_in, const at::Tensor& boxes_in, const at::Tensor& levels_in,
    c10::ArrayRef<double> scales, int64_t pooled_h, int64_t pooled_w, int64_t batch_size,
    int64_t channels, c10::ArrayRef<int64_t> heights, c10::ArrayRef<int64_t> widths,
    int64_t sampling_ratio, bool aligned, bool channels_last, bool deterministic) {
  TORCH_CHECK(
      static_cast<int64_t>(scales.size()) <= kMaxLevels, "spatial_scales must hold at most ",
      kMaxLevels, " levels on CUDA, got ", scales.size());
  int64_t max_h = 0, max_w = 0;
  for (size_t l = 0; l < scales.size(); ++l) {
    max_h = std::max(max_h, heights[l]);
    max_w = std::max(max_w, widths[l]);
  }
  const DeviceGuard guard(grad_in.device());
  const auto fmt = memory_format_of(channels_last);
  const at::Tensor boxes = boxes_in.contiguous();
  const at::Tensor grad = grad_in.contiguous(fmt);
  const auto dtype = grad.scalar_type();
  std::vector<at::Tensor> acc;
  bool any = false;
  for (size_t l = 0; l < scales.size(); ++l) {
    acc.push_back(zeroed_grad_map({batch_size, channels, heights[l], widths[l]}, grad, fmt));
    any = any || acc.back().numel() > 0;
  }
  if (grad.numel() > 0 && any) {
    const int64_t num_levels = static_cast<int64_t>(scales.size());
    const at::Tensor levels = levels_in.defined() ? levels_in.contiguous() : at::Tensor();
    const at::Tensor batch = checked_batch_index(boxes, batch_size, levels, num_levels);
    const int64_t* level_ptr = levels.defined() ? levels.const_data_ptr<int64_t>() : nullptr;
    const cudaStream_t stream = current_stream();
    const bool det = deterministic || at::globalContext().deterministicAlgorithms();
    const RoiParams p = align_params(
        batch_size, channels, pooled_h, pooled_w, sampling_ratio, aligned, channels_last);
    FRCNN_DISPATCH_FLOATING_TYPES(dtype, "roi_align_backward_cuda", [&] {
      using G = at::opmath_type<scalar_t>;
      LevelSet<G*> grads{};
      grads.count = num_levels;
      for (int64_t l = 0; l < num_levels; ++l) {
        grads.data[l] = acc[l].mutable_data_ptr<G>();
        grads.height[l] = heights[l];
        grads.width[l] = widths[l];
        grads.scale[l] = scales[l];
      }
      if (det) {
        const size_t smem = sizeof(int) * static_cast<size_t>(2 * (max_h + max_w) + 4);
        TORCH_CHECK(
            static_cast<int64_t>(smem) <= kMaxDetSharedBytes,
            "the deterministic RoIAlign backward supports feature maps with height + width <= ",
            (kMaxDetSharedBytes / static_cast<int64_t>(sizeof(int)) - 4) / 2, ", got ", max_h,
            " + ", max_w, " (use deterministic=False)");
        const DeviceRoisByImage g = group_by_image_device(batch, batch_size);
        const int64_t chunk = det_channel_chunk(batch_size, channels);
        const int64_t tasks = batch_size * ((channels + chunk - 1) / chunk);
        const unsigned int grid =
            static_cast<unsigned int>(std::min<int64_t>(tasks, max_grid_dim()));
        FRCNN_LAUNCH(
            roi_align_backward_deterministic_kernel<scalar_t>, grid, kDetThreads, smem, stream)(
            grad.const_data_ptr<scalar_t>(), grads, boxes.const_data_ptr<scalar_t>(), level_ptr,
            g.order.const_data_ptr<int64_t>(), g.offsets.const_data_ptr<int64_t>(), p, chunk);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      } else {
        const int64_t total = grad.numel();
        FRCNN_LAUNCH(
            roi_align_backward_atomic_kernel<scalar_t>, blocks_for(total), kThreadsPerBlock, 0,
            stream)(
            grad.const_data_ptr<scalar_t>(), grads, boxes.const_data_ptr<scalar_t>(),
            batch.const_data_ptr<int64_t>(), level_ptr, total, p);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
    });
  }
  for (auto& a : acc) a = finish_grad_map(a, dtype);
  return acc;
}

using Entries = RoiAlignEntries<multilevel_forward_cuda, multilevel_backward_cuda>;

}  // namespace

FRCNN_CUDA_LIBRARY_IMPL(m) {
  m.impl("roi_align", &Entries::roi_align);
  m.impl("_roi_align_backward", &Entries::roi_align_backward);
  m.impl("multilevel_roi_align", &Entries::multilevel_roi_align);
  m.impl("_multilevel_roi_align_backward", &Entries::multilevel_roi_align_backward);
}

}  // namespace frcnn_fast
