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
#include "parallel.h"
#include "radix_sort.h"

// Greedy NMS on the CPU, exact (the same kept set as reference/nms.py, ties included), with a
// cost that follows the boxes near each box instead of N^2:
//
// 1. Rank: stable radix sort of the scores (ties in input order, NaN last). A score_threshold
//    cuts the ranked list, since the boxes that pass it are a prefix.
// 2. Batched: a stable radix sort of the ranked list by group id makes every group a contiguous
//    run, still in rank order. Boxes are gathered in that order as columns in the math type.
// 3. Per group, in rank order, each box asks a grid of the group's kept boxes whether one of
//    them suppresses it, and joins the grid if not. The grid files kept boxes by corner and a
//    query only visits corners that can reach IoU > t (nms_grid.h): a scattered box tests the
//    few kept boxes of about its size near its corner, a clustered one usually stops at the
//    first cell.
// 4. Threads: a group runs whole on one thread, groups are shared out over the threads by box
//    count (from kParallelGroups boxes). One group is sequential: per-block fork/joins were
//    measured to cost more than they save on a shared 2-core machine (a descheduled thread
//    holds up every join).

namespace frcnn_fast {
namespace {

// Below this a group is resolved by the plain greedy loop against its kept boxes.
constexpr int64_t kSmallGroup = 32;
constexpr int64_t kMaxCellsPerAxis = 256;
// Boxes below which the threads are not used for the gather: a fork/join costs more than a
// few milliseconds whenever the machine is busy (a descheduled thread holds up the join).
constexpr int64_t kParallelWork = 65536;
// Boxes from which batched NMS resolves groups on several threads: groups are independent
// and a few thousand boxes of them take milliseconds, well above a fork/join.
constexpr int64_t kParallelGroups = 4096;

template <typename T>
struct Columns {
  std::vector<T> x1, y1, x2, y2, area;
  std::vector<uint8_t> active;

  explicit Columns(int64_t n) : x1(n), y1(n), x2(n), y2(n), area(n), active(n) {}

  RankedBoxes<T> view() const {
    return {x1.data(), y1.data(), x2.data(), y2.data(), area.data(), active.data()};
  }
};

// Boxes `input[pick[p]]` for p in [0, n) as columns in the math type; on several threads when
// each gets at least `grain` boxes.
template <typename scalar_t, typename T>
Columns<T> gather_columns(
    const scalar_t* boxes, const std::vector<int64_t>& pick, int64_t n, int64_t grain) {
  Columns<T> c(n);
  parallel_for_work(n, grain, [&](int64_t begin, int64_t end) {
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

// Resolves groups one at a time on one thread, reusing its scratch space (the kept list of
// small groups, the grid of large ones) from group to group: many small groups then cost no
// allocation each.
template <typename T>
class GroupSolver {
 public:
  // Greedy NMS of the group [begin, end); at most `limit` boxes kept. Writes keep[begin, end),
  // which must be zero on entry.
  int64_t run(
      const RankedBoxes<T>& b, int64_t begin, int64_t end, T thr, int64_t limit, uint8_t* keep) {
    return end - begin <= kSmallGroup ? greedy_small(b, begin, end, thr, limit, keep)
                                      : greedy_grid(b, begin, end, thr, limit, keep);
  }

 private:
  // Each box is tested against the boxes kept so far.
  int64_t greedy_small(
      const RankedBoxes<T>& b, int64_t begin, int64_t end, T thr, int64_t limit, uint8_t* keep) {
    kept_.clear();
    int64_t kept_count = 0;
    for (int64_t j = begin; j < end && kept_count < limit; ++j) {
      if (!b.active[j]) {
        keep[j] = 1;  // inert: kept, suppresses nothing
        ++kept_count;
        continue;
      }
      bool hit = false;
      for (const int64_t i : kept_) {
        const T inter = box_intersection(
            b.x1[i], b.y1[i], b.x2[i], b.y2[i], b.x1[j], b.y1[j], b.x2[j], b.y2[j]);
        if (iou_from_areas(inter, b.area[i], b.area[j]) > thr) {
          hit = true;
          break;
        }
      }
      if (!hit) {
        keep[j] = 1;
        ++kept_count;
        kept_.push_back(j);
      }
    }
    return kept_count;
  }

  // Each box asks the grid of the kept boxes (filed by corner, see nms_grid.h) whether one of
  // them suppresses it, and joins it if not. The cost per box is the kept boxes near its
  // corner: no N^2, no bitmask, no fork/join.
  int64_t greedy_grid(
      const RankedBoxes<T>& b, int64_t begin, int64_t end, T thr, int64_t limit, uint8_t* keep) {
    const int64_t m = end - begin;
    const int64_t max_axis = std::min<int64_t>(
        kMaxCellsPerAxis, 1 + static_cast<int64_t>(std::sqrt(static_cast<double>(m))));
    grid_.reset(b, begin, end, max_axis, thr);
    int64_t kept_count = 0;
    for (int64_t j = begin; j < end && kept_count < limit; ++j) {
      if (!b.active[j]) {
        keep[j] = 1;
        ++kept_count;
        continue;
      }
      if (grid_.any_above(b.x1[j], b.y1[j], b.x2[j], b.y2[j], b.area[j], thr)) {
        continue;
      }
      keep[j] = 1;
      ++kept_count;
      grid_.insert(b.x1[j], b.y1[j], b.x2[j], b.y2[j], b.area[j]);
    }
    return kept_count;
  }

  std::vector<int64_t> kept_;
  KeptGrid<T> grid_;
};

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
    const scalar_t* boxes, const std::vector<int64_t>& order, double iou_threshold, int64_t limit) {
  using T = at::opmath_type<scalar_t>;
  const int64_t n = static_cast<int64_t>(order.size());
  std::vector<uint8_t> keep(n, 0);
  const Columns<T> cols = gather_columns<scalar_t, T>(boxes, order, n, kParallelWork);
  GroupSolver<T>().run(cols.view(), 0, n, threshold_in<T>(iou_threshold), limit, keep.data());
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
  // The threads are about to be used for the groups anyway.
  const Columns<T> cols = gather_columns<scalar_t, T>(boxes, pick, n, kParallelGroups);
  const RankedBoxes<T> view = cols.view();
  const T thr = threshold_in<T>(iou_threshold);

  std::vector<int64_t> starts;  // group g is [starts[g], starts[g + 1])
  for (int64_t p = 0; p < n; ++p) {
    if (p == 0 || keys[p] != keys[p - 1]) {
      starts.push_back(p);
    }
  }
  starts.push_back(n);
  const int64_t groups = static_cast<int64_t>(starts.size()) - 1;
  std::vector<uint8_t> keep_pos(n, 0);
  // Threads split the boxes evenly and each resolves the groups that start in its share: the
  // work divides by boxes, not by groups (one group is never split, so a group larger than a
  // share leaves the other threads idle for part of the time).
  auto run_share = [&](int64_t share_begin, int64_t share_end) {
    GroupSolver<T> solver;
    int64_t g = std::lower_bound(starts.begin(), starts.end() - 1, share_begin) - starts.begin();
    for (; g < groups && starts[g] < share_end; ++g) {
      solver.run(view, starts[g], starts[g + 1], thr, n, keep_pos.data());
    }
  };
  if (groups > 1 && n >= kParallelGroups) {
    parallel_for_work(n, kParallelGroups / 2, run_share);
  } else {
    run_share(0, n);
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
  FRCNN_DISPATCH_FLOATING_TYPES(b.scalar_type(), "nms_cpu", [&] {
    const std::vector<int64_t> order = rank_boxes(s.const_data_ptr<scalar_t>(), n, score_threshold);
    const std::vector<uint8_t> keep =
        keep_single(b.const_data_ptr<scalar_t>(), order, iou_threshold, limit);
    out = collect(order, keep, b);
  });
  return out;
}

at::Tensor batched_nms_impl(
    const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs, double iou_threshold,
    std::optional<double> score_threshold) {
  const at::Tensor b = boxes.contiguous();
  const at::Tensor s = scores.contiguous();
  const at::Tensor g = idxs.contiguous();
  const int64_t n = b.size(0);
  at::Tensor out;
  FRCNN_DISPATCH_FLOATING_TYPES(b.scalar_type(), "batched_nms_cpu", [&] {
    using box_t = scalar_t;
    const std::vector<int64_t> order = rank_boxes(s.const_data_ptr<box_t>(), n, score_threshold);
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
    const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold, int64_t max_output,
    std::optional<double> score_threshold) {
  check_nms_inputs(boxes, scores, iou_threshold);
  check_nms_padded_args(max_output, score_threshold);
  return pad(nms_impl(boxes, scores, iou_threshold, score_threshold, max_output), max_output);
}

std::tuple<at::Tensor, at::Tensor> batched_nms_padded_cpu(
    const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs, double iou_threshold,
    int64_t max_output, std::optional<double> score_threshold) {
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
