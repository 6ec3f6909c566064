#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <tuple>
#include <type_traits>
#include <vector>

#include "../common/box_math.h"
#include "../common/match_math.h"
#include "../match_boxes.h"
#include "parallel.h"

// Two passes over tiles of anchors, each pass O(G) work per anchor and no G x A storage:
//   1. every ground truth's best IoU over all anchors (per-chunk maxima, then a max over chunks);
//   2. every anchor's best ground truth (first index on ties), its label from the thresholds,
//      and the low-quality test IoU == best IoU of that ground truth, the IoU recomputed.
// Memory: the outputs, B x G bests per chunk of work (chunks <= threads) and one tile per task.

namespace frcnn_fast {
namespace {

// Anchors per tile: the tile's columns (5 x 256 values) stay in L1 while all G ground truths
// sweep over them.
constexpr int64_t kTile = 256;
// Below this many IoUs per task a second thread costs more to wake than it saves.
constexpr int64_t kPairsPerTask = int64_t(1) << 16;

// A tile of anchors as columns in the math type, padded with empty boxes (IoU 0 with anything,
// so they never raise a maximum).
template <typename T>
struct AnchorTile {
  alignas(64) T x1[kTile];
  alignas(64) T y1[kTile];
  alignas(64) T x2[kTile];
  alignas(64) T y2[kTile];
  alignas(64) T area[kTile];
  int64_t size = 0;
};

template <typename scalar_t, typename T>
void load_tile(const scalar_t* anchors, int64_t begin, int64_t count, AnchorTile<T>& tile) {
  const int64_t n = std::min(kTile, count - begin);
  for (int64_t j = 0; j < n; ++j) {
    T b[4];
    load_box(anchors + 4 * (begin + j), b);
    tile.x1[j] = b[0];
    tile.y1[j] = b[1];
    tile.x2[j] = b[2];
    tile.y2[j] = b[3];
    tile.area[j] = box_area(b[0], b[1], b[2], b[3]);
  }
  for (int64_t j = n; j < kTile; ++j) {
    tile.x1[j] = tile.y1[j] = tile.x2[j] = tile.y2[j] = tile.area[j] = T(0);
  }
  tile.size = n;
}

// A ground truth in the math type: x1, y1, x2, y2, area.
template <typename T>
struct GtBox {
  T x1, y1, x2, y2, area;
};

template <typename scalar_t, typename T>
GtBox<T> load_gt(const scalar_t* p) {
  T b[4];
  load_box(p, b);
  return {b[0], b[1], b[2], b[3], box_area(b[0], b[1], b[2], b[3])};
}

// IoUs of one ground truth with a whole tile. Arguments by value and restrict pointers so that
// the loop vectorises (as box_iou_row does).
template <typename scalar_t, typename T>
void tile_ious(
    GtBox<T> g, const T* __restrict x1, const T* __restrict y1, const T* __restrict x2,
    const T* __restrict y2, const T* __restrict area, T* __restrict out) {
  for (int64_t j = 0; j < kTile; ++j) {
    out[j] =
        match_iou<scalar_t>(g.x1, g.y1, g.x2, g.y2, g.area, x1[j], y1[j], x2[j], y2[j], area[j]);
  }
}

// Max of a tile's IoUs (all >= 0) in independent lanes, which the compiler keeps in vector
// registers (a single running max would be a serial dependency chain).
template <typename T>
T tile_max(const T* __restrict v) {
  constexpr int kLanes = 16;
  T lane[kLanes] = {};
  for (int64_t j = 0; j < kTile; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      lane[l] = max2(v[j + l], lane[l]);
    }
  }
  T m = T(0);
  for (int l = 0; l < kLanes; ++l) {
    m = max2(lane[l], m);
  }
  return m;
}

// Pass 2's update of a tile with ground truth `gi`: strict > keeps the first best index on
// ties (as torch.max does); `target` is the ground truth's best IoU, or -1 (never an IoU) for
// a ground truth whose best IoU is 0, which rescues nothing.
template <typename scalar_t, typename T, typename I>
void tile_update(
    GtBox<T> g, I gi, T target, const T* __restrict x1, const T* __restrict y1,
    const T* __restrict x2, const T* __restrict y2, const T* __restrict area, T* __restrict best,
    I* __restrict index, I* __restrict hit) {
  for (int64_t j = 0; j < kTile; ++j) {
    const T v =
        match_iou<scalar_t>(g.x1, g.y1, g.x2, g.y2, g.area, x1[j], y1[j], x2[j], y2[j], area[j]);
    const bool better = v > best[j];
    best[j] = better ? v : best[j];
    index[j] = better ? gi : index[j];
    hit[j] = v == target ? I(1) : hit[j];
  }
}

template <typename scalar_t>
void match_cpu(
    const scalar_t* gt, const int64_t* counts, int64_t batch, int64_t g_max,
    const scalar_t* anchors, int64_t a_count, double high_threshold, double low_threshold,
    bool allow_low_quality, int64_t* matches, scalar_t* max_iou) {
  using T = at::opmath_type<scalar_t>;
  // Same lane width as T, so that the index and flag updates vectorise with the IoUs.
  using I = typename std::conditional<sizeof(T) == 8, int64_t, int32_t>::type;
  const T high = threshold_as_dtype<scalar_t, T>(high_threshold);
  const T low = threshold_as_dtype<scalar_t, T>(low_threshold);
  // Counts were validated (or are clamped here, when the caller skipped validation).
  std::vector<int64_t> count(batch);
  for (int64_t b = 0; b < batch; ++b) {
    count[b] = counts == nullptr ? g_max : std::min(std::max<int64_t>(counts[b], 0), g_max);
  }
  const int64_t tiles = (a_count + kTile - 1) / kTile;
  const int64_t items = batch * tiles;  // (image, tile) pairs
  const int64_t pairs_per_item = std::max<int64_t>(g_max, 1) * kTile;
  const int64_t grain = std::max<int64_t>(1, kPairsPerTask / pairs_per_item);

  // Pass 1. Each chunk of items keeps its own B x G maxima; chunks are merged after.
  const int64_t chunks = parallel_chunks(items, grain);
  std::vector<std::vector<T>> chunk_best(chunks);
  parallel_for_work(chunks, 1, [&](int64_t c_begin, int64_t c_end) {
    AnchorTile<T> tile;
    alignas(64) T ious[kTile];
    for (int64_t c = c_begin; c < c_end; ++c) {
      std::vector<T>& best = chunk_best[c];
      best.assign(batch * g_max, T(0));
      const int64_t first = items * c / chunks, last = items * (c + 1) / chunks;
      for (int64_t item = first; item < last; ++item) {
        const int64_t b = item / tiles;
        load_tile(anchors, (item % tiles) * kTile, a_count, tile);
        const scalar_t* gt_b = gt + b * g_max * 4;
        T* best_b = best.data() + b * g_max;
        for (int64_t g = 0; g < count[b]; ++g) {
          tile_ious<scalar_t>(
              load_gt<scalar_t, T>(gt_b + 4 * g), tile.x1, tile.y1, tile.x2, tile.y2, tile.area,
              ious);
          best_b[g] = max2(tile_max(ious), best_b[g]);
        }
      }
    }
  });
  std::vector<T> gt_best(batch * g_max, T(0));
  for (const auto& best : chunk_best) {
    for (size_t i = 0; i < gt_best.size(); ++i) {
      gt_best[i] = max2(best[i], gt_best[i]);
    }
  }

  // Pass 2.
  parallel_for_work(items, grain, [&](int64_t begin, int64_t end) {
    AnchorTile<T> tile;
    alignas(64) T best[kTile];
    alignas(64) I index[kTile];
    alignas(64) I hit[kTile];
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / tiles;
      const int64_t a0 = (item % tiles) * kTile;
      load_tile(anchors, a0, a_count, tile);
      std::fill(best, best + kTile, T(-1));
      std::fill(index, index + kTile, I(0));
      std::fill(hit, hit + kTile, I(0));
      const scalar_t* gt_b = gt + b * g_max * 4;
      for (int64_t g = 0; g < count[b]; ++g) {
        const T gb = gt_best[b * g_max + g];
        tile_update<scalar_t>(
            load_gt<scalar_t, T>(gt_b + 4 * g), static_cast<I>(g), gb > T(0) ? gb : T(-1), tile.x1,
            tile.y1, tile.x2, tile.y2, tile.area, best, index, hit);
      }
      int64_t* m = matches + b * a_count + a0;
      scalar_t* v = max_iou + b * a_count + a0;
      for (int64_t j = 0; j < tile.size; ++j) {
        m[j] = match_label(
            best[j], static_cast<int64_t>(index[j]), allow_low_quality && hit[j] != 0, low, high,
            count[b]);
        v[j] = static_cast<scalar_t>(count[b] == 0 ? T(0) : best[j]);
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> match_impl(
    const MatchInputs& in, double high_threshold, double low_threshold, bool allow_low_quality) {
  const at::Tensor& gt = in.gt_boxes;
  const int64_t batch = gt.size(0);
  const int64_t a_count = in.anchors.size(0);
  at::Tensor matches = at::empty({batch, a_count}, in.anchors.options().dtype(at::kLong));
  at::Tensor max_iou = at::empty({batch, a_count}, in.anchors.options());
  if (matches.numel() == 0) {
    return {matches, max_iou};
  }
  // Fewer than 2^31 ground truths per image: the pass-2 index lanes are 32-bit for float.
  TORCH_CHECK(
      gt.size(1) < (int64_t(1) << 31), "gt_boxes may hold at most 2^31 - 1 boxes per image, got ",
      gt.size(1));
  FRCNN_DISPATCH_FLOATING_TYPES(gt.scalar_type(), "match_boxes", [&] {
    match_cpu(
        gt.const_data_ptr<scalar_t>(),
        in.gt_counts.defined() ? in.gt_counts.const_data_ptr<int64_t>() : nullptr, batch,
        gt.size(1), in.anchors.const_data_ptr<scalar_t>(), a_count, high_threshold, low_threshold,
        allow_low_quality, matches.mutable_data_ptr<int64_t>(),
        max_iou.mutable_data_ptr<scalar_t>());
  });
  return {matches, max_iou};
}

using Entries = MatchBoxesEntries<match_impl>;

}  // namespace

TORCH_LIBRARY_IMPL(frcnn_fast, CPU, m) {
  m.impl("match_boxes", &Entries::match_boxes);
  m.impl("match_boxes_batched", &Entries::match_boxes_batched);
}

}  // namespace frcnn_fast
