#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <tuple>
#include <type_traits>
#include <vector>

#include "../common/box_math.h"
#include "../common/nms_math.h"
#include "../nms.h"
#include "nms_grid.h"
#include "radix_sort.h"

// Greedy NMS on the CPU, exact (the same kept set as reference/nms.py, ties included), with a
// cost that follows the number of overlapping pairs instead of N^2:
//
// 1. Rank: stable radix sort of the scores (ties in input order, NaN last). A score_threshold
//    cuts the ranked list, since the boxes that pass it are a prefix.
// 2. Batched: a stable radix sort of the ranked list by group id makes every group a contiguous
//    run, still in rank order. Boxes are gathered in that order as columns in the math type.
// 3. Per group, ranks are resolved in blocks (kSerialBlock / kParallelBlock). In parallel over a block's boxes, each
//    box asks a grid of the group's kept boxes whether one of them suppresses it (only kept
//    boxes sharing a grid cell can), and records as a bitmask which earlier boxes of its own
//    block it overlaps above the threshold. A sequential pass over the block then applies the
//    greedy rule with those bits (one AND per box) and adds the newly kept boxes to the grid.
//    Clustered inputs cost little (a suppressed box stops at the first hit); scattered inputs
//    cost the neighbours each box has, not N.
// 4. Groups small enough run whole on one thread, many groups at a time; large groups use the
//    threads inside each block.

namespace frcnn_fast {
namespace {

// Ranks resolved together: a box's bitmask row covers the earlier boxes of its block. A group
// run on one thread uses small blocks (the rows cost block/2 IoUs per box); a group spread over
// the threads uses large ones, since every block costs a fork/join of the thread pool, which
// is what dominates on a loaded machine.
constexpr int64_t kSerialBlock = 256;
constexpr int64_t kParallelBlock = 1024;
constexpr int64_t kWords = kParallelBlock / 64;
// Below this a group is resolved by the plain greedy loop against its kept boxes.
constexpr int64_t kSmallGroup = 32;
// Up to this size groups run one per thread; larger ones spread each block over the threads.
constexpr int64_t kSerialGroup = int64_t(1) << 62;
constexpr int64_t kMaxCellsPerAxis = 256;

template <typename T>
struct Columns {
  std::vector<T> x1, y1, x2, y2, area;
  std::vector<uint8_t> active;

  explicit Columns(int64_t n)
      : x1(n), y1(n), x2(n), y2(n), area(n), active(n) {}

  RankedBoxes<T> view() const {
    return {x1.data(), y1.data(), x2.data(), y2.data(), area.data(), active.data()};
  }
};

// Boxes `input[pick[p]]` for p in [0, n) as columns in the math type.
template <typename scalar_t, typename T>
Columns<T> gather_columns(const scalar_t* boxes, const std::vector<int64_t>& pick, int64_t n) {
  Columns<T> c(n);
  at::parallel_for(0, n, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      T b[4];
      load_box(boxes + 4 * pick[p], b);
      const T area = box_area(b[0], b[1], b[2], b[3]);
      c.x1[p] = b[0];
      c.y1[p] = b[1];
      c.x2[p] = b[2];
      c.y2[p] = b[3];
      c.area[p] = area;
      c.active[p] = box_is_finite(b[0], b[1], b[2], b[3]) && area > T(0);
    }
  });
  return c;
}

// Plain greedy loop for a small group: each box is tested against the boxes kept so far.
template <typename T>
void greedy_small(const RankedBoxes<T>& b, int64_t begin, int64_t end, T thr, uint8_t* keep) {
  std::vector<int64_t> kept;
  for (int64_t j = begin; j < end; ++j) {
    if (!b.active[j]) {
      keep[j] = 1;
      continue;
    }
    bool hit = false;
    for (const int64_t i : kept) {
      const T inter = box_intersection(
          b.x1[i], b.y1[i], b.x2[i], b.y2[i], b.x1[j], b.y1[j], b.x2[j], b.y2[j]);
      if (iou_from_areas(inter, b.area[i], b.area[j]) > thr) {
        hit = true;
        break;
      }
    }
    keep[j] = !hit;
    if (!hit) {
      kept.push_back(j);
    }
  }
}

// Bits of the boxes i in [block, j) with IoU(i, j) > thr, i - block being the bit index.
// The comparisons go to bytes first (a vectorisable loop), then are packed.
template <typename T>
void overlap_row(
    const RankedBoxes<T>& b, int64_t block, int64_t j, T thr, uint8_t* flags, uint64_t* row) {
  const T bx1 = b.x1[j], by1 = b.y1[j], bx2 = b.x2[j], by2 = b.y2[j], barea = b.area[j];
  const T* __restrict x1 = b.x1 + block;
  const T* __restrict y1 = b.y1 + block;
  const T* __restrict x2 = b.x2 + block;
  const T* __restrict y2 = b.y2 + block;
  const T* __restrict area = b.area + block;
  const int64_t m = j - block;
  for (int64_t k = 0; k < m; ++k) {
    const T w = min2(x2[k], bx2) - max2(x1[k], bx1);
    const T h = min2(y2[k], by2) - max2(y1[k], by1);
    const T inter = clamp_min0(w) * clamp_min0(h);
    flags[k] = iou_from_areas(inter, area[k], barea) > thr;
  }
  for (int64_t w = 0; w < (m + 63) / 64; ++w) {
    uint64_t bits = 0;
    const int64_t lo = w * 64, hi = std::min<int64_t>(m, lo + 64);
    for (int64_t k = lo; k < hi; ++k) {
      bits |= uint64_t(flags[k]) << (k - lo);
    }
    row[w] = bits;
  }
}

// Greedy NMS of the group [begin, end) with the kept-box grid and per-block bitmasks (see the
// file comment). Stops once `limit` boxes are kept (the rest of the ranks cannot change the
// first `limit` kept ones); returns the number kept.
template <typename T>
int64_t greedy_blocked(
    const RankedBoxes<T>& b, int64_t begin, int64_t end, T thr, bool parallel, int64_t limit,
    uint8_t* keep) {
  const int64_t m = end - begin;
  const int64_t max_axis = std::min<int64_t>(
      kMaxCellsPerAxis, 1 + static_cast<int64_t>(std::sqrt(static_cast<double>(m))));
  KeptGrid<T> grid(b, begin, end, max_axis, thr);
  const int64_t block_size = parallel ? kParallelBlock : kSerialBlock;
  std::vector<uint8_t> survivor(block_size);
  std::vector<uint64_t> rows(block_size * kWords);
  int64_t kept_count = 0;
  for (int64_t block = begin; block < end && kept_count < limit; block += block_size) {
    const int64_t block_end = std::min(end, block + block_size);
    auto examine = [&](int64_t first, int64_t last) {
      std::vector<uint8_t> flags(block_size);
      for (int64_t j = first; j < last; ++j) {
        const int64_t r = j - block;
        survivor[r] = b.active[j] &&
            !grid.any_above(b.x1[j], b.y1[j], b.x2[j], b.y2[j], b.area[j], thr);
        if (survivor[r]) {
          overlap_row(b, block, j, thr, flags.data(), &rows[r * kWords]);
        }
      }
    };
    if (parallel) {
      at::parallel_for(block, block_end, 64, examine);
    } else {
      examine(block, block_end);
    }
    uint64_t kept_bits[kWords] = {};
    for (int64_t j = block; j < block_end && kept_count < limit; ++j) {
      const int64_t r = j - block;
      if (!b.active[j]) {
        keep[j] = 1;  // inert: kept, suppresses nothing
        ++kept_count;
        continue;
      }
      bool suppressed = !survivor[r];
      for (int64_t w = 0; w < (r + 63) / 64 && !suppressed; ++w) {
        suppressed = (rows[r * kWords + w] & kept_bits[w]) != 0;
      }
      if (suppressed) {
        continue;
      }
      keep[j] = 1;
      ++kept_count;
      kept_bits[r / 64] |= uint64_t(1) << (r % 64);
      grid.insert(b.x1[j], b.y1[j], b.x2[j], b.y2[j], b.area[j]);
    }
  }
  return kept_count;
}

// Greedy NMS of the group [begin, end) on one thread: each box asks the grid of the kept boxes
// (filed by corner, see nms_grid.h) whether one of them suppresses it, and joins it if not.
// The cost per box is the kept boxes near its corner: no N^2, no bitmask, no fork/join.
template <typename T>
int64_t greedy_sequential(
    const RankedBoxes<T>& b, int64_t begin, int64_t end, T thr, int64_t limit, uint8_t* keep) {
  const int64_t m = end - begin;
  const int64_t max_axis = std::min<int64_t>(
      kMaxCellsPerAxis, 1 + static_cast<int64_t>(std::sqrt(static_cast<double>(m))));
  KeptGrid<T> grid(b, begin, end, max_axis, thr);
  int64_t kept_count = 0;
  for (int64_t j = begin; j < end && kept_count < limit; ++j) {
    if (!b.active[j]) {
      keep[j] = 1;  // inert: kept, suppresses nothing
      ++kept_count;
      continue;
    }
    if (grid.any_above(b.x1[j], b.y1[j], b.x2[j], b.y2[j], b.area[j], thr)) {
      continue;
    }
    keep[j] = 1;
    ++kept_count;
    grid.insert(b.x1[j], b.y1[j], b.x2[j], b.y2[j], b.area[j]);
  }
  return kept_count;
}

template <typename T>
void greedy_group(
    const RankedBoxes<T>& b, int64_t begin, int64_t end, T thr, bool parallel, int64_t limit,
    uint8_t* keep) {
  if (end - begin <= kSmallGroup) {
    greedy_small(b, begin, end, thr, keep);
  } else if (!parallel) {
    greedy_sequential(b, begin, end, thr, limit, keep);
  } else {
    greedy_blocked(b, begin, end, thr, parallel, limit, keep);
  }
}

// Ranks of the boxes that take part: input indices in decreasing score, ties in input order,
// NaN last, cut to the scores above `score_threshold` when one is given.
template <typename scalar_t>
std::vector<int64_t> rank_boxes(
    const scalar_t* scores, int64_t n, std::optional<double> score_threshold) {
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) {
    order[i] = i;
  }
  if constexpr (std::is_same_v<scalar_t, double>) {
    std::vector<uint64_t> keys(n);
    for (int64_t i = 0; i < n; ++i) {
      keys[i] = descending_score_key64(scores[i]);
    }
    radix_sort_stable(keys, order);
  } else {
    std::vector<uint32_t> keys(n);
    for (int64_t i = 0; i < n; ++i) {
      keys[i] = descending_score_key32(static_cast<float>(scores[i]));
    }
    radix_sort_stable(keys, order);
  }
  if (score_threshold.has_value()) {
    // Passing scores form a prefix of the ranking (NaN > t is false, and NaN ranks last).
    int64_t passing = 0;
    for (int64_t i = 0; i < n; ++i) {
      passing += static_cast<double>(scores[i]) > *score_threshold;
    }
    order.resize(passing);
  }
  return order;
}

// Kept flags indexed by rank (position in `order`) for a single group.
template <typename scalar_t>
std::vector<uint8_t> keep_single(
    const scalar_t* boxes, const std::vector<int64_t>& order, double iou_threshold,
    int64_t limit) {
  using T = at::opmath_type<scalar_t>;
  const int64_t n = static_cast<int64_t>(order.size());
  std::vector<uint8_t> keep(n, 0);
  const Columns<T> cols = gather_columns<scalar_t, T>(boxes, order, n);
  // Like a batched group: below kSerialGroup the fork/joins cost more than they save.
  greedy_group(
      cols.view(), 0, n, threshold_in<T>(iou_threshold), n > kSerialGroup, limit, keep.data());
  return keep;
}

// Kept flags indexed by rank for NMS within each group id.
template <typename scalar_t, typename index_t>
std::vector<uint8_t> keep_batched(
    const scalar_t* boxes, const index_t* idxs, const std::vector<int64_t>& order,
    double iou_threshold) {
  using T = at::opmath_type<scalar_t>;
  const int64_t n = static_cast<int64_t>(order.size());
  // Positions p in group-major, rank-minor order: by_group[p] is a rank.
  std::vector<int64_t> by_group(n);
  std::vector<uint64_t> keys(n);
  for (int64_t r = 0; r < n; ++r) {
    by_group[r] = r;
    keys[r] = group_key(static_cast<int64_t>(idxs[order[r]]));
  }
  radix_sort_stable(keys, by_group);
  std::vector<int64_t> pick(n);
  for (int64_t p = 0; p < n; ++p) {
    pick[p] = order[by_group[p]];
  }
  const Columns<T> cols = gather_columns<scalar_t, T>(boxes, pick, n);
  const RankedBoxes<T> view = cols.view();
  const T thr = threshold_in<T>(iou_threshold);

  std::vector<int64_t> small, large;  // group starts; group g ends where the next starts
  std::vector<int64_t> starts;
  for (int64_t p = 0; p < n; ++p) {
    if (p == 0 || keys[p] != keys[p - 1]) {
      starts.push_back(p);
    }
  }
  starts.push_back(n);
  for (size_t g = 0; g + 1 < starts.size(); ++g) {
    (starts[g + 1] - starts[g] <= kSerialGroup ? small : large).push_back(static_cast<int64_t>(g));
  }
  std::vector<uint8_t> keep_pos(n, 0);
  const int64_t no_limit = n;
  at::parallel_for(0, static_cast<int64_t>(small.size()), 1, [&](int64_t first, int64_t last) {
    for (int64_t s = first; s < last; ++s) {
      const int64_t g = small[s];
      greedy_group(view, starts[g], starts[g + 1], thr, false, no_limit, keep_pos.data());
    }
  });
  for (const int64_t g : large) {
    greedy_group(view, starts[g], starts[g + 1], thr, true, no_limit, keep_pos.data());
  }
  std::vector<uint8_t> keep(n, 0);
  for (int64_t p = 0; p < n; ++p) {
    keep[by_group[p]] = keep_pos[p];
  }
  return keep;
}

// The kept input indices in rank order: all of them, or (padded) the first max_output.
at::Tensor collect(
    const std::vector<int64_t>& order, const std::vector<uint8_t>& keep, const at::Tensor& like) {
  int64_t count = 0;
  for (const uint8_t k : keep) {
    count += k;
  }
  at::Tensor out = at::empty({count}, like.options().dtype(at::kLong));
  int64_t* o = out.mutable_data_ptr<int64_t>();
  for (size_t r = 0; r < keep.size(); ++r) {
    if (keep[r]) {
      *o++ = order[r];
    }
  }
  return out;
}

std::tuple<at::Tensor, at::Tensor> pad(const at::Tensor& kept, int64_t max_output) {
  const int64_t count = std::min<int64_t>(kept.size(0), max_output);
  at::Tensor out = at::full({max_output}, -1, kept.options());
  out.narrow(0, 0, count).copy_(kept.narrow(0, 0, count));
  return {out, at::scalar_tensor(count, kept.options())};
}

at::Tensor nms_impl(
    const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold,
    std::optional<double> score_threshold, int64_t limit) {
  const at::Tensor b = boxes.contiguous();
  const at::Tensor s = scores.contiguous();
  const int64_t n = b.size(0);
  at::Tensor out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, b.scalar_type(), "nms_cpu", [&] {
    const std::vector<int64_t> order =
        rank_boxes(s.const_data_ptr<scalar_t>(), n, score_threshold);
    const std::vector<uint8_t> keep =
        keep_single(b.const_data_ptr<scalar_t>(), order, iou_threshold, limit);
    out = collect(order, keep, b);
  });
  return out;
}

at::Tensor batched_nms_impl(
    const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
    double iou_threshold, std::optional<double> score_threshold) {
  const at::Tensor b = boxes.contiguous();
  const at::Tensor s = scores.contiguous();
  const at::Tensor g = idxs.contiguous();
  const int64_t n = b.size(0);
  at::Tensor out;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, b.scalar_type(), "batched_nms_cpu", [&] {
        using box_t = scalar_t;
        const std::vector<int64_t> order =
            rank_boxes(s.const_data_ptr<box_t>(), n, score_threshold);
        AT_DISPATCH_INTEGRAL_TYPES(g.scalar_type(), "batched_nms_cpu_idxs", [&] {
          const std::vector<uint8_t> keep = keep_batched(
              b.const_data_ptr<box_t>(), g.const_data_ptr<scalar_t>(), order, iou_threshold);
          out = collect(order, keep, b);
        });
      });
  return out;
}

at::Tensor nms_cpu(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  check_nms_inputs(boxes, scores, iou_threshold);
  return nms_impl(boxes, scores, iou_threshold, std::nullopt, boxes.size(0));
}

at::Tensor batched_nms_cpu(
    const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
    double iou_threshold) {
  check_batched_nms_inputs(boxes, scores, idxs, iou_threshold);
  return batched_nms_impl(boxes, scores, idxs, iou_threshold, std::nullopt);
}

std::tuple<at::Tensor, at::Tensor> nms_padded_cpu(
    const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold,
    int64_t max_output, std::optional<double> score_threshold) {
  check_nms_inputs(boxes, scores, iou_threshold);
  check_nms_padded_args(max_output, score_threshold);
  return pad(nms_impl(boxes, scores, iou_threshold, score_threshold, max_output), max_output);
}

std::tuple<at::Tensor, at::Tensor> batched_nms_padded_cpu(
    const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
    double iou_threshold, int64_t max_output, std::optional<double> score_threshold) {
  check_batched_nms_inputs(boxes, scores, idxs, iou_threshold);
  check_nms_padded_args(max_output, score_threshold);
  return pad(batched_nms_impl(boxes, scores, idxs, iou_threshold, score_threshold), max_output);
}

}  // namespace

TORCH_LIBRARY_IMPL(frcnn_fast, CPU, m) {
  m.impl("nms", &nms_cpu);
  m.impl("batched_nms", &batched_nms_cpu);
  m.impl("nms_padded", &nms_padded_cpu);
  m.impl("batched_nms_padded", &batched_nms_padded_cpu);
}

}  // namespace frcnn_fast
