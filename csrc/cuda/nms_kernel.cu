#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <tuple>

#include "../common/box_math.h"
#include "../common/nms_math.h"
#include "../nms.h"
#include "device.cuh"
#include "launch.cuh"

// Bitmask NMS on the GPU, exact (the same kept set as the CPU kernel and reference/nms.py, ties
// included), with no copy of the mask to the host:
//
// 1. Rank (ATen, on the device): a stable ascending sort of -score. Ascending sorts put NaN
//    last, equal scores keep input order, and -(+0) == -(-0) ties the signed zeros: exactly the
//    CPU's radix ranking. A score_threshold keeps a prefix of the ranking: the `n_pass` best
//    ranks, counted on the device (the padded forms may not sync).
// 2. Batched: a second stable sort of the ranked group ids gives "positions" in group-major,
//    rank-minor order; each group is a segment [seg_start, seg_end) of positions. The
//    unbatched op is the special case of one segment.
// 3. Prepare: boxes gathered in position order in the math type; a box with a non-finite
//    coordinate becomes an empty sentinel box whose IoU with anything is 0 (inert).
// 4. Mask: for each position p and each 64-position column block c of its segment at or after
//    its own block, the bits of the later positions q of that block with IoU(p, q) > thr. Rows
//    are stored relative to their own block: word k of row p is column block rb(p) + k, so a
//    row needs only W = (largest segment's block count) words; M x W words in all.
// 5. Reduce (greedy): one thread block per segment walks its 64-position blocks in order. Warp
//    0 resolves a block's survivors with ballots and shuffles (a loop over the kept boxes only,
//    each one removing its diagonal word), then the whole block ORs the kept rows into the
//    segment's "removed" words further right (__syncthreads between the two steps).
// 6. Compaction: keep flags indexed by rank, a cumsum, and a scatter into a -1 filled output of
//    max_output slots; the count stays a 0-d device tensor. Only the unpadded ops read the
//    count back (one sync, the output size depends on it).

namespace frcnn_fast {
namespace {

constexpr int kBlockBits = 64;
constexpr uint64_t kOne = 1;
constexpr unsigned kFullWarp = 0xffffffffu;
// Masks up to this size skip the device memory query (it is a driver call; small masks are
// the common case, and the padded forms run inside CUDA graph captures).
constexpr int64_t kQueryMemoryAbove = int64_t(1) << 30;
// Batched, unpadded: with a worst-case mask up to this size, W is the worst case (N's block
// count) and no sync is spent on the largest group.
constexpr int64_t kWorstCaseMaskBytes = int64_t(64) << 20;
// Batched: thread blocks of the mask and reduce kernels along the positions (each loops over
// the positions it is given and skips those that start no row block / no segment).
constexpr int64_t kBatchedGridX = 4096;
constexpr int64_t kBatchedGridY = 16;
constexpr int kMaxReduceThreads = 256;

FRCNN_HOST_DEVICE int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Sorted boxes as [M, 4] in the math type T; inert boxes replaced by the empty sentinel
// (x1 = y1 = +inf, x2 = y2 = -inf: intersection and area 0 with no NaN on the way, IoU 0).
template <typename scalar_t, typename T>
__global__ void nms_prepare_kernel(
    const scalar_t* __restrict__ boxes, const int64_t* __restrict__ pos_input, int64_t m,
    T* __restrict__ out) {
  FRCNN_GRID_STRIDE_LOOP(p, m) {
    T b[4];
    load_box(boxes + 4 * pos_input[p], b);
    if (!box_is_finite(b[0], b[1], b[2], b[3])) {
      const T inf = static_cast<T>(INFINITY);
      b[0] = inf;
      b[1] = inf;
      b[2] = -inf;
      b[3] = -inf;
    }
    out[4 * p + 0] = b[0];
    out[4 * p + 1] = b[1];
    out[4 * p + 2] = b[2];
    out[4 * p + 3] = b[3];
  }
}

// Segment of position p: [0, m) unbatched (seg_start == nullptr), else the group's run.
struct Segments {
  const int64_t* start;
  const int64_t* end;
  int64_t m;
};

__device__ __forceinline__ int64_t segment_start(const Segments& s, int64_t p) {
  return s.start == nullptr ? 0 : s.start[p];
}
__device__ __forceinline__ int64_t segment_end(const Segments& s, int64_t p) {
  return s.end == nullptr ? s.m : s.end[p];
}

// Block of 64 threads; thread t owns row p0 + t of a row block. blockIdx.x walks the row blocks
// (unbatched: row block u starts at 64u; batched: every position p, skipping those that do
// not start a row block of their segment), blockIdx.y the column blocks at or after it.
template <typename T>
__global__ void nms_mask_kernel(
    const T* __restrict__ boxes, Segments seg, int64_t row_items, bool batched, T threshold,
    int64_t words, uint64_t* __restrict__ mask) {
  FRCNN_STATIC_SHARED(T, cols, [kBlockBits * 4]);
  const int t = threadIdx.x;
  for (int64_t u = blockIdx.x; u < row_items; u += gridDim.x) {
    const int64_t p0 = batched ? u : u * kBlockBits;
    const int64_t s = segment_start(seg, p0);
    if ((p0 - s) % kBlockBits != 0) {
      continue;  // same decision for the whole block: p0 does not start a row block
    }
    const int64_t e = segment_end(seg, p0);
    const int64_t rb = (p0 - s) / kBlockBits;
    const int64_t nb = ceil_div(e - s, kBlockBits);
    const int64_t p = p0 + t;
    const bool has_row = p < e && t < kBlockBits;
    T r[4] = {T(0), T(0), T(0), T(0)};
    T row_area = T(0);
    if (has_row) {
      r[0] = boxes[4 * p + 0];
      r[1] = boxes[4 * p + 1];
      r[2] = boxes[4 * p + 2];
      r[3] = boxes[4 * p + 3];
      row_area = box_area(r[0], r[1], r[2], r[3]);
    }
    for (int64_t c = rb + blockIdx.y; c < nb; c += gridDim.y) {
      const int64_t q0 = s + c * kBlockBits;
      const int ncols = static_cast<int>(min2<int64_t>(kBlockBits, e - q0));
      __syncthreads();  // the previous tile's readers are done with `cols`
      if (t < ncols) {
        for (int k = 0; k < 4; ++k) {
          cols[4 * t + k] = boxes[4 * (q0 + t) + k];
        }
      }
      __syncthreads();
      if (has_row) {
        // Only later positions: on the diagonal block, the columns after the row itself.
        const int first = c == rb ? t + 1 : 0;
        uint64_t bits = 0;
        for (int k = first; k < ncols; ++k) {
          const T* q = cols + 4 * k;
          // Operand order as in the CPU kernel (earlier box first), so the IoU is the same
          // value to the bit and `> threshold` decides alike.
          const T inter = box_intersection(r[0], r[1], r[2], r[3], q[0], q[1], q[2], q[3]);
          const T iou = iou_from_areas(inter, row_area, box_area(q[0], q[1], q[2], q[3]));
          if (iou > threshold) {
            bits |= kOne << k;
          }
        }
        mask[p * words + (c - rb)] = bits;
      }
    }
  }
}

// One thread block per segment (blockIdx.x walks the positions, skipping non-starts). The
// segment's "removed" words live in removed[s + b] for its blocks b (a segment has no more
// blocks than positions, so the words of two segments never collide).
__global__ void nms_reduce_kernel(
    const uint64_t* __restrict__ mask, int64_t words, Segments seg, int64_t segment_items,
    bool batched, const int64_t* __restrict__ rank_of_pos, const int64_t* __restrict__ n_pass,
    uint64_t* __restrict__ removed, int32_t* __restrict__ keep_by_rank) {
  FRCNN_STATIC_SHARED(uint64_t, kept_shared);
  const int t = threadIdx.x;
  const int64_t passing = n_pass == nullptr ? seg.m : *n_pass;
  for (int64_t u = blockIdx.x; u < segment_items; u += gridDim.x) {
    const int64_t s = batched ? u : 0;
    if (segment_start(seg, s) != s) {
      continue;  // uniform: s is not the first position of its segment
    }
    const int64_t e = segment_end(seg, s);
    const int64_t nb = ceil_div(e - s, kBlockBits);
    uint64_t* seg_removed = removed + s;
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t base = s + b * kBlockBits;
      if (t < 32) {
        // Warp 0: lane l holds the diagonal words of rows base + l and base + l + 32.
        const int64_t p_lo = base + t, p_hi = base + t + 32;
        const bool in_lo = p_lo < e, in_hi = p_hi < e;
        const uint64_t diag_lo = in_lo ? mask[p_lo * words] : 0;
        const uint64_t diag_hi = in_hi ? mask[p_hi * words] : 0;
        const int64_t rank_lo = in_lo ? (rank_of_pos ? rank_of_pos[p_lo] : p_lo) : 0;
        const int64_t rank_hi = in_hi ? (rank_of_pos ? rank_of_pos[p_hi] : p_hi) : 0;
        // A box below the score threshold is never kept (and so suppresses nothing).
        const unsigned valid_lo = __ballot_sync(kFullWarp, in_lo && rank_lo < passing);
        const unsigned valid_hi = __ballot_sync(kFullWarp, in_hi && rank_hi < passing);
        uint64_t alive = (uint64_t(valid_hi) << 32 | valid_lo) & ~seg_removed[b];
        uint64_t kept = 0;
        // Greedy within the block, one step per kept box: the lowest alive position is kept
        // (nothing before it removed it), and removes what its diagonal word marks.
        while (alive != 0) {
          const int i = __ffsll(static_cast<long long>(alive)) - 1;
          kept |= kOne << i;
          const uint64_t row = __shfl_sync(kFullWarp, i < 32 ? diag_lo : diag_hi, i & 31);
          alive &= ~row & ~(kOne << i);
        }
        if (in_lo && ((kept >> t) & 1)) {
          keep_by_rank[rank_lo] = 1;
        }
        if (in_hi && ((kept >> (t + 32)) & 1)) {
          keep_by_rank[rank_hi] = 1;
        }
        if (t == 0) {
          kept_shared = kept;
        }
      }
      __syncthreads();
      const uint64_t kept = kept_shared;
      // The kept rows remove, in every later block of the segment, what they overlap.
      for (int64_t k = b + 1 + t; k < nb; k += blockDim.x) {
        uint64_t acc = seg_removed[k];
        uint64_t rest = kept;
        while (rest != 0) {
          const int i = __ffsll(static_cast<long long>(rest)) - 1;
          rest &= rest - 1;
          acc |= mask[(base + i) * words + (k - b)];
        }
        seg_removed[k] = acc;
      }
      __syncthreads();  // removed words and kept_shared are read again by the next block
    }
  }
}

// out[slot] = input index of the kept rank with that slot (slot = kept ranks before it), for
// the first `capacity` slots; the rest of `out` stays -1.
__global__ void nms_scatter_kernel(
    const int32_t* __restrict__ keep_by_rank, const int64_t* __restrict__ inclusive,
    const int64_t* __restrict__ order, int64_t m, int64_t capacity, int64_t* __restrict__ out) {
  FRCNN_GRID_STRIDE_LOOP(r, m) {
    if (keep_by_rank[r]) {
      const int64_t slot = inclusive[r] - 1;
      if (slot < capacity) {
        out[slot] = order[r];
      }
    }
  }
}

// Refuses a mask that cannot be allocated, before anything is launched, naming the sizes.
void check_mask_fits(const at::Tensor& boxes, int64_t m, int64_t words, bool batched, bool padded) {
  // m <= 2^63 / 8 / words is what keeps m * words * 8 in int64.
  const int64_t max_rows = (INT64_MAX / 8) / std::max<int64_t>(words, 1);
  TORCH_CHECK(
      m <= max_rows, "nms: the suppression mask of ", m, " boxes (", words,
      " 64-bit words per box) overflows int64 bytes");
  const int64_t bytes = m * words * 8;
  if (bytes <= kQueryMemoryAbove) {
    return;
  }
  const int64_t available = device_available_bytes(boxes.device());
  const double gib = 1024.0 * 1024.0 * 1024.0;
  TORCH_CHECK(
      bytes <= available, batched ? (padded ? "batched_nms_padded" : "batched_nms") : "nms",
      ": N = ", m, " boxes need a suppression mask of N x ", words,
      " 64-bit words = ", static_cast<double>(bytes) / gib, " GiB, but only ",
      static_cast<double>(available) / gib,
      " GiB of device memory are available (the mask of the unbatched op, and of the padded "
      "batched op, takes N x ceil(N/64) x 8 bytes; see docs/CONVENTIONS.md). Reduce N (e.g. a "
      "top-k by score first) or split it into groups with batched_nms.");
}

// Everything but the input checks: kept input indices in rank order, cut to `capacity` slots
// and -1 padded, and the count of filled slots as a 0-d device tensor.
std::tuple<at::Tensor, at::Tensor> nms_cuda_impl(
    const at::Tensor& boxes_in, const at::Tensor& scores_in, const at::Tensor* idxs_in,
    double iou_threshold, std::optional<double> score_threshold, int64_t capacity, bool padded) {
  const DeviceGuard guard(boxes_in.device());
  const at::Tensor boxes = boxes_in.contiguous();
  const at::Tensor scores = scores_in.contiguous();
  const int64_t m = boxes.size(0);
  const bool batched = idxs_in != nullptr;
  const at::TensorOptions long_opts = boxes.options().dtype(at::kLong);
  at::Tensor out = at::full({capacity}, -1, long_opts);
  if (m == 0) {
    return {out, at::zeros({}, long_opts)};
  }
  const int64_t blocks = ceil_div(m, kBlockBits);

  // 1. ranking (see the file comment); half types are exact in float, double stays double.
  const at::Tensor key =
      scores.scalar_type() == at::kDouble ? scores.neg() : scores.to(at::kFloat).neg();
  const at::Tensor order =
      std::get<1>(at::sort(key, /*stable=*/true, /*dim=*/0, /*descending=*/false));
  at::Tensor n_pass;
  if (score_threshold.has_value()) {
    n_pass = at::gt(scores.to(at::kDouble), *score_threshold).sum(at::kLong);
  }

  // 2. positions and segments
  at::Tensor pos_input = order, rank_of_pos, seg_start, seg_end;
  int64_t words = blocks;
  if (batched) {
    const at::Tensor groups = idxs_in->to(at::kLong).index_select(0, order);
    auto sorted = at::sort(groups, /*stable=*/true, /*dim=*/0, /*descending=*/false);
    const at::Tensor g = std::get<0>(sorted);
    rank_of_pos = std::get<1>(sorted);
    pos_input = order.index_select(0, rank_of_pos);
    const at::Tensor ar = at::arange(m, long_opts);
    at::Tensor change = at::ne(g.narrow(0, 1, m - 1), g.narrow(0, 0, m - 1));
    const at::Tensor yes = at::ones({1}, change.options());
    const at::Tensor is_start = at::cat({yes, change});
    const at::Tensor is_end = at::cat({change, yes});
    seg_start = std::get<0>(at::cummax(at::where(is_start, ar, 0), 0));
    seg_end = std::get<0>(at::cummin(at::where(is_end, ar + 1, m).flip({0}), 0)).flip({0});
    if (!padded && m * blocks * 8 > kWorstCaseMaskBytes) {
      // Rows only need the largest group's block count; worth a sync when the worst case is big.
      const int64_t largest = (seg_end - seg_start).max().item<int64_t>();
      words = ceil_div(largest, kBlockBits);
    }
  }
  check_mask_fits(boxes, m, words, batched, padded);
  const Segments seg{
      batched ? seg_start.const_data_ptr<int64_t>() : nullptr,
      batched ? seg_end.const_data_ptr<int64_t>() : nullptr, m};

  const cudaStream_t stream = current_stream();
  at::Tensor mask = at::empty({m * words}, long_opts);
  at::Tensor removed = at::zeros({m}, long_opts);
  at::Tensor keep_by_rank = at::zeros({m}, boxes.options().dtype(at::kInt));
  uint64_t* mask_ptr = reinterpret_cast<uint64_t*>(mask.mutable_data_ptr<int64_t>());

  FRCNN_DISPATCH_FLOATING_TYPES(boxes.scalar_type(), "nms_cuda", [&] {
    using T = at::opmath_type<scalar_t>;
    const at::Tensor sorted_boxes =
        at::empty({m, 4}, boxes.options().dtype(c10::CppTypeToScalarType<T>::value));
    constexpr auto prepare = nms_prepare_kernel<scalar_t, T>;
    FRCNN_LAUNCH(prepare, blocks_for(m), kThreadsPerBlock, 0, stream)(
        boxes.const_data_ptr<scalar_t>(), pos_input.const_data_ptr<int64_t>(), m,
        sorted_boxes.mutable_data_ptr<T>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();

    // Unbatched: every (row block, column block) tile gets a thread block (torchvision's
    // grid); batched: a fixed grid that loops, since the segments are only known on the device.
    const int64_t row_items = batched ? m : blocks;
    const int64_t gx = batched ? std::min(m, kBatchedGridX) : blocks;
    const int64_t gy = batched ? std::min(words, kBatchedGridY) : blocks;
    const dim3 grid(
        static_cast<unsigned int>(std::min(gx, max_grid_dim())),
        static_cast<unsigned int>(std::min(gy, max_grid_dim())));
    FRCNN_LAUNCH(nms_mask_kernel<T>, grid, kBlockBits, 0, stream)(
        sorted_boxes.const_data_ptr<T>(), seg, row_items, batched, threshold_in<T>(iou_threshold),
        words, mask_ptr);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });

  // Whole warps (warp 0 resolves the blocks), about half a row's words: a row is ORed in two
  // strides, which costs little (the second is short once the scan is past the first blocks)
  // and lets inputs of a few thousand boxes exercise the strided loop in the emulated tests.
  const int threads = static_cast<int>(std::min<int64_t>(
      kMaxReduceThreads, std::max<int64_t>(32, ceil_div(ceil_div(words, 2), 32) * 32)));
  const int64_t segment_items = batched ? m : 1;
  const unsigned int reduce_grid = static_cast<unsigned int>(
      std::min(batched ? std::min(m, kBatchedGridX) : int64_t(1), max_grid_dim()));
  FRCNN_LAUNCH(nms_reduce_kernel, reduce_grid, threads, 0, stream)(
      mask_ptr, words, seg, segment_items, batched,
      batched ? rank_of_pos.const_data_ptr<int64_t>() : nullptr,
      n_pass.defined() ? n_pass.const_data_ptr<int64_t>() : nullptr,
      reinterpret_cast<uint64_t*>(removed.mutable_data_ptr<int64_t>()),
      keep_by_rank.mutable_data_ptr<int32_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();

  const at::Tensor inclusive = keep_by_rank.cumsum(0, at::kLong);
  FRCNN_LAUNCH(nms_scatter_kernel, blocks_for(m), kThreadsPerBlock, 0, stream)(
      keep_by_rank.const_data_ptr<int32_t>(), inclusive.const_data_ptr<int64_t>(),
      order.const_data_ptr<int64_t>(), m, capacity, out.mutable_data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const at::Tensor count = at::clamp_max(inclusive.select(0, m - 1), capacity);
  return {out, count};
}

at::Tensor nms_cuda(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  check_nms_inputs(boxes, scores, iou_threshold);
  auto [out, count] =
      nms_cuda_impl(boxes, scores, nullptr, iou_threshold, std::nullopt, boxes.size(0), false);
  // The one device-to-host sync: the output's size is the number of kept boxes.
  return out.narrow(0, 0, count.item<int64_t>());
}

at::Tensor batched_nms_cuda(
    const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
    double iou_threshold) {
  check_batched_nms_inputs(boxes, scores, idxs, iou_threshold);
  auto [out, count] =
      nms_cuda_impl(boxes, scores, &idxs, iou_threshold, std::nullopt, boxes.size(0), false);
  return out.narrow(0, 0, count.item<int64_t>());
}

std::tuple<at::Tensor, at::Tensor> nms_padded_cuda(
    const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold, int64_t max_output,
    std::optional<double> score_threshold) {
  check_nms_inputs(boxes, scores, iou_threshold);
  check_nms_padded_args(max_output, score_threshold);
  return nms_cuda_impl(boxes, scores, nullptr, iou_threshold, score_threshold, max_output, true);
}

std::tuple<at::Tensor, at::Tensor> batched_nms_padded_cuda(
    const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs, double iou_threshold,
    int64_t max_output, std::optional<double> score_threshold) {
  check_batched_nms_inputs(boxes, scores, idxs, iou_threshold);
  check_nms_padded_args(max_output, score_threshold);
  return nms_cuda_impl(boxes, scores, &idxs, iou_threshold, score_threshold, max_output, true);
}

}  // namespace

FRCNN_CUDA_LIBRARY_IMPL(m) {
  m.impl("nms", &nms_cuda);
  m.impl("batched_nms", &batched_nms_cuda);
  m.impl("nms_padded", &nms_padded_cuda);
  m.impl("batched_nms_padded", &batched_nms_padded_cuda);
}

}  // namespace frcnn_fast
