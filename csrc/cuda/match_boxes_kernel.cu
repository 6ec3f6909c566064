#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>

#include "../common/box_math.h"
#include "../common/match_math.h"
#include "../match_boxes.h"
#include "device.cuh"
#include "launch.cuh"

// The same two passes as the CPU kernel, never storing G x A:
//   pass 1 (gt_best_kernel): a block owns up to kGtPerBlock ground truths of one image, one per
//     thread, and a slice of the anchors, which it stages through shared memory; every thread
//     keeps its ground truth's running max in a register and ends with one atomicMax on the
//     IoU's bits (IouBits: the integer order is the IoU order) into the B x G bests;
//   pass 2 (assign_kernel): one thread per (image, anchor) sweeps the image's ground truths,
//     staged with their bests through shared memory, recomputing each IoU with match_iou.

namespace frcnn_fast {
namespace {

constexpr int kGtPerBlock = 128;     // pass 1: threads per block, one ground truth each
constexpr int64_t kSliceTiles = 16;  // pass 1: anchor tiles (of kGtPerBlock) per slice
constexpr int kAssignThreads = 256;  // pass 2: threads per block, one anchor each
constexpr int kGtTile = 128;         // pass 2: ground truths staged per step

// Ground truths of image b that take part: the count, clamped so that a bad count (when the
// caller skipped validation) can never index outside the padded rows.
__device__ __forceinline__ int64_t gt_count(const int64_t* counts, int64_t b, int64_t g_max) {
  if (counts == nullptr) {
    return g_max;
  }
  const int64_t c = counts[b];
  return c < 0 ? 0 : (c > g_max ? g_max : c);
}

template <typename scalar_t>
__global__ void gt_best_kernel(
    const scalar_t* __restrict__ gt, const int64_t* __restrict__ counts, int64_t batch,
    int64_t g_max, const scalar_t* __restrict__ anchors, int64_t a_count,
    typename IouBits<at::opmath_type<scalar_t>>::type* __restrict__ best) {
  using T = at::opmath_type<scalar_t>;
  FRCNN_STATIC_SHARED(T, s_x1, [kGtPerBlock]);
  FRCNN_STATIC_SHARED(T, s_y1, [kGtPerBlock]);
  FRCNN_STATIC_SHARED(T, s_x2, [kGtPerBlock]);
  FRCNN_STATIC_SHARED(T, s_y2, [kGtPerBlock]);
  FRCNN_STATIC_SHARED(T, s_area, [kGtPerBlock]);
  const int64_t gt_blocks = (g_max + kGtPerBlock - 1) / kGtPerBlock;
  const int64_t slice = kSliceTiles * kGtPerBlock;
  const int64_t slices = (a_count + slice - 1) / slice;
  // Loop bounds depend on the block only, so every thread reaches every barrier.
  for (int64_t item = blockIdx.y; item < batch * gt_blocks; item += gridDim.y) {
    const int64_t b = item / gt_blocks;
    const int64_t g = (item % gt_blocks) * kGtPerBlock + threadIdx.x;
    const int64_t count = gt_count(counts, b, g_max);
    if ((item % gt_blocks) * kGtPerBlock >= count) {
      continue;  // uniform: the whole block skips
    }
    const bool active = g < count;
    T gb[4] = {T(0), T(0), T(0), T(0)};
    if (active) {
      load_box(gt + (b * g_max + g) * 4, gb);
    }
    const T garea = box_area(gb[0], gb[1], gb[2], gb[3]);
    for (int64_t s = blockIdx.x; s < slices; s += gridDim.x) {
      T running = T(0);
      const int64_t end = min2(a_count, (s + 1) * slice);
      for (int64_t base = s * slice; base < end; base += kGtPerBlock) {
        const int64_t a = base + threadIdx.x;
        __syncthreads();  // the previous tile's readers are done
        if (a < end) {
          T ab[4];
          load_box(anchors + 4 * a, ab);
          s_x1[threadIdx.x] = ab[0];
          s_y1[threadIdx.x] = ab[1];
          s_x2[threadIdx.x] = ab[2];
          s_y2[threadIdx.x] = ab[3];
          s_area[threadIdx.x] = box_area(ab[0], ab[1], ab[2], ab[3]);
        }
        __syncthreads();
        const int n = static_cast<int>(min2<int64_t>(kGtPerBlock, end - base));
        if (active) {
          for (int j = 0; j < n; ++j) {
            const T v = match_iou<scalar_t>(
                gb[0], gb[1], gb[2], gb[3], garea, s_x1[j], s_y1[j], s_x2[j], s_y2[j], s_area[j]);
            running = max2(v, running);
          }
        }
      }
      // Zero is the initial value of every best: only a positive max needs the atomic.
      if (active && running > T(0)) {
        atomicMax(best + b * g_max + g, iou_to_bits(running));
      }
    }
  }
}

template <typename scalar_t>
__global__ void assign_kernel(
    const scalar_t* __restrict__ gt, const int64_t* __restrict__ counts, int64_t batch,
    int64_t g_max, const scalar_t* __restrict__ anchors, int64_t a_count,
    const typename IouBits<at::opmath_type<scalar_t>>::type* __restrict__ best,
    at::opmath_type<scalar_t> high, at::opmath_type<scalar_t> low, bool allow_low_quality,
    int64_t* __restrict__ matches, scalar_t* __restrict__ max_iou) {
  using T = at::opmath_type<scalar_t>;
  FRCNN_STATIC_SHARED(T, s_x1, [kGtTile]);
  FRCNN_STATIC_SHARED(T, s_y1, [kGtTile]);
  FRCNN_STATIC_SHARED(T, s_x2, [kGtTile]);
  FRCNN_STATIC_SHARED(T, s_y2, [kGtTile]);
  FRCNN_STATIC_SHARED(T, s_area, [kGtTile]);
  FRCNN_STATIC_SHARED(T, s_target, [kGtTile]);
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t b = blockIdx.y; b < batch; b += gridDim.y) {
    const int64_t count = gt_count(counts, b, g_max);
    for (int64_t base = static_cast<int64_t>(blockIdx.x) * blockDim.x; base < a_count;
         base += stride) {
      const int64_t a = base + threadIdx.x;
      const bool active = a < a_count;
      T ab[4] = {T(0), T(0), T(0), T(0)};
      if (active) {
        load_box(anchors + 4 * a, ab);
      }
      const T aarea = box_area(ab[0], ab[1], ab[2], ab[3]);
      T best_v = T(-1);
      int64_t best_g = 0;
      bool hit = false;
      for (int64_t g0 = 0; g0 < count; g0 += kGtTile) {
        const int n = static_cast<int>(min2<int64_t>(kGtTile, count - g0));
        __syncthreads();  // the previous step's readers are done
        if (static_cast<int>(threadIdx.x) < n) {
          T gb[4];
          load_box(gt + (b * g_max + g0 + threadIdx.x) * 4, gb);
          s_x1[threadIdx.x] = gb[0];
          s_y1[threadIdx.x] = gb[1];
          s_x2[threadIdx.x] = gb[2];
          s_y2[threadIdx.x] = gb[3];
          s_area[threadIdx.x] = box_area(gb[0], gb[1], gb[2], gb[3]);
          const T gbest = iou_from_bits<T>(best[b * g_max + g0 + threadIdx.x]);
          // A ground truth whose best IoU is 0 rescues nothing: -1 equals no IoU.
          s_target[threadIdx.x] = gbest > T(0) ? gbest : T(-1);
        }
        __syncthreads();
        if (active) {
          for (int j = 0; j < n; ++j) {
            const T v = match_iou<scalar_t>(
                s_x1[j], s_y1[j], s_x2[j], s_y2[j], s_area[j], ab[0], ab[1], ab[2], ab[3], aarea);
            if (v > best_v) {  // strict: the first best index on ties, as torch.max
              best_v = v;
              best_g = g0 + j;
            }
            hit = hit || v == s_target[j];
          }
        }
      }
      if (active) {
        matches[b * a_count + a] =
            match_label(best_v, best_g, allow_low_quality && hit, low, high, count);
        max_iou[b * a_count + a] = static_cast<scalar_t>(count == 0 ? T(0) : best_v);
      }
    }
  }
}

std::tuple<at::Tensor, at::Tensor> match_impl(
    const MatchInputs& in, double high_threshold, double low_threshold, bool allow_low_quality) {
  const at::Tensor& gt = in.gt_boxes;
  const DeviceGuard guard(gt.device());
  const int64_t batch = gt.size(0);
  const int64_t g_max = gt.size(1);
  const int64_t a_count = in.anchors.size(0);
  at::Tensor matches = at::empty({batch, a_count}, in.anchors.options().dtype(at::kLong));
  at::Tensor max_iou = at::empty({batch, a_count}, in.anchors.options());
  if (matches.numel() == 0) {
    return {matches, max_iou};
  }
  const int64_t* counts = in.gt_counts.defined() ? in.gt_counts.const_data_ptr<int64_t>() : nullptr;
  const cudaStream_t stream = current_stream();
  FRCNN_DISPATCH_FLOATING_TYPES(gt.scalar_type(), "match_boxes", [&] {
    using T = at::opmath_type<scalar_t>;
    using Bits = typename IouBits<T>::type;
    const auto bits_dtype = sizeof(Bits) == 8 ? at::kLong : at::kInt;
    // Bits of +0.0 are 0: every best starts at IoU 0.
    at::Tensor best =
        at::zeros({std::max<int64_t>(batch * g_max, 1)}, gt.options().dtype(bits_dtype));
    Bits* best_ptr = static_cast<Bits*>(best.data_ptr());
    if (g_max > 0) {
      const int64_t slices =
          (a_count + kSliceTiles * kGtPerBlock - 1) / (kSliceTiles * kGtPerBlock);
      const int64_t gt_blocks = (g_max + kGtPerBlock - 1) / kGtPerBlock;
      const dim3 grid(
          static_cast<unsigned int>(std::min<int64_t>(slices, max_grid_dim())),
          static_cast<unsigned int>(std::min<int64_t>(batch * gt_blocks, max_grid_dim())));
      FRCNN_LAUNCH(gt_best_kernel<scalar_t>, grid, kGtPerBlock, 0, stream)(
          gt.const_data_ptr<scalar_t>(), counts, batch, g_max,
          in.anchors.const_data_ptr<scalar_t>(), a_count, best_ptr);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    const dim3 grid(
        blocks_for(a_count, kAssignThreads),
        static_cast<unsigned int>(std::min<int64_t>(batch, max_grid_dim())));
    FRCNN_LAUNCH(assign_kernel<scalar_t>, grid, kAssignThreads, 0, stream)(
        gt.const_data_ptr<scalar_t>(), counts, batch, g_max, in.anchors.const_data_ptr<scalar_t>(),
        a_count, best_ptr, threshold_as_dtype<scalar_t, T>(high_threshold),
        threshold_as_dtype<scalar_t, T>(low_threshold), allow_low_quality,
        matches.mutable_data_ptr<int64_t>(), max_iou.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {matches, max_iou};
}

using Entries = MatchBoxesEntries<match_impl>;

}  // namespace

FRCNN_CUDA_LIBRARY_IMPL(m) {
  m.impl("match_boxes", &Entries::match_boxes);
  m.impl("match_boxes_batched", &Entries::match_boxes_batched);
}

}  // namespace frcnn_fast
