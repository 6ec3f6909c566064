#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "../common/box_math.h"

namespace frcnn_fast {

// Boxes of one NMS group as columns in the math type T, in rank order. `active` marks the boxes
// that can suppress or be suppressed at all: finite coordinates and a positive area (an area-0
// box has IoU 0 with everything; a non-finite one is defined to be inert).
template <typename T>
struct RankedBoxes {
  const T* x1;
  const T* y1;
  const T* x2;
  const T* y2;
  const T* area;
  const uint8_t* active;
};

// A uniform grid over the kept boxes of a group, for the question "does any kept box k have
// IoU(k, j) > threshold with box j?".
//
// Kept boxes are filed by their top-left corner (x1, y1), each in exactly one cell, and a query
// visits only the corners that can pass. For real numbers, IoU(k, j) > t > 0 needs
//   * intersecting boxes:              x1_j - w_k < x1_k < x2_j;
//   * inter_w > t * max(w_k, w_j):     inter * 1 > t * max(area) and inter_h <= min(h), hence
//                                      inter_w > t * max(area) / min(h) >= t * max(w);
//     so w_k < w_j / t, and (inter_w <= w_left - |x1_k - x1_j|) |x1_k - x1_j| < (1 - t) * max(w)
//     < (1 - t) / t * w_j;
// and the same in y. A query therefore scans x1_k in (x1_j - min(max_w, q w_j), x1_j +
// min(w_j, q w_j)) with q = (1 - t) / t: at t = 0.7 a window of 0.86 w_j x 0.86 h_j around
// the corner, instead of every kept box that merely overlaps j (scattered boxes overlap many).
// The cost per query follows the kept boxes near the corner, not N.
//
// The kernels compare a rounded IoU with the threshold, so the windows use t lowered by a
// relative 1e-4 (far above the few ulps of float arithmetic) and are widened by a relative
// 1e-6; a group with extreme geometry (an area or a side that is not a normal, finite number
// in T or in the window arithmetic) falls back to one cell, i.e. to testing every kept box.
// Testing a candidate is the kernels' exact IoU; the window only decides which are tested.
//
// Boxes are stored in packs of kLanes as columns so that testing a cell is a fixed-width loop
// the compiler vectorises; unused lanes hold a box that intersects nothing. Cell indices come
// from a monotone function of a coordinate (subtract, multiply, floor, clamp, in double), so a
// corner inside a query's window always lies in one of the cells the query visits.
template <typename T>
class KeptGrid {
 public:
  static constexpr int kLanes = 8;

  struct Pack {
    T x1[kLanes], y1[kLanes], x2[kLanes], y2[kLanes], area[kLanes];
    int64_t next;  // the cell's previous (full) pack, or kNone
  };

  // Empties the grid and lays it out for the group [begin, end) of `b`. One grid serves every
  // group a thread resolves: the pack pool and the cell tables keep their capacity, so a group
  // costs no allocation once the largest one has been seen.
  void reset(
      const RankedBoxes<T>& b, int64_t begin, int64_t end, int64_t max_per_axis, T threshold) {
    x0_ = y0_ = inv_x_ = inv_y_ = 0.0;
    max_w_ = max_h_ = 0.0;
    unbounded_ = false;
    nx_ = ny_ = 1;
    double xmin = std::numeric_limits<double>::infinity(), ymin = xmin;
    double xmax = -xmin, ymax = -xmin, sum_w = 0.0, sum_h = 0.0;
    int64_t count = 0;
    bool exotic = false;
    const T tiny = std::numeric_limits<T>::min();
    for (int64_t i = begin; i < end; ++i) {
      if (!b.active[i]) {
        continue;
      }
      const double x1 = b.x1[i], y1 = b.y1[i], w = double(b.x2[i]) - x1, h = double(b.y2[i]) - y1;
      const T wt = b.x2[i] - b.x1[i], ht = b.y2[i] - b.y1[i];
      exotic |= !(std::isfinite(wt) && std::isfinite(ht) && std::isfinite(b.area[i])) ||
          wt < tiny || ht < tiny || b.area[i] < tiny;
      xmin = std::min(xmin, x1);
      ymin = std::min(ymin, y1);
      xmax = std::max(xmax, x1);
      ymax = std::max(ymax, y1);
      max_w_ = std::max(max_w_, w);
      max_h_ = std::max(max_h_, h);
      sum_w += w;
      sum_h += h;
      ++count;
    }
    const double t = static_cast<double>(threshold) * (1.0 - 1e-4);
    q_ = t > 0.0 ? (1.0 - t) / t : std::numeric_limits<double>::infinity();
    exotic |= !std::isfinite(max_w_) || !std::isfinite(max_h_) || !std::isfinite(sum_w) ||
        !std::isfinite(sum_h);
    if (exotic || count == 0) {
      unbounded_ = true;
    } else {
      // Cells about half a typical query window wide: a query visits a few cells, and the
      // corners it tests lie little outside its window. (A quarter of a window was measured
      // slower on RPN-like groups of 250 boxes and no faster on scattered ones.)
      const double mean_w = sum_w / count, mean_h = sum_h / count;
      axis(xmin, xmax, std::min(mean_w, q_ * mean_w), max_per_axis, x0_, inv_x_, nx_);
      axis(ymin, ymax, std::min(mean_h, q_ * mean_h), max_per_axis, y0_, inv_y_, ny_);
    }
    head_.assign(static_cast<size_t>(nx_ * ny_), kNone);
    fill_.assign(static_cast<size_t>(nx_ * ny_), 0);
    packs_.clear();
  }

  void insert(T x1, T y1, T x2, T y2, T area) {
    const size_t c = static_cast<size_t>(cell(x1, y1));
    const int lane = fill_[c] % kLanes;
    if (lane == 0) {
      // A cell's packs form a list through `next`, newest first; the newest has the free lanes.
      packs_.push_back(empty_pack(head_[c]));
      head_[c] = static_cast<int64_t>(packs_.size()) - 1;
    }
    Pack& p = packs_[static_cast<size_t>(head_[c])];
    p.x1[lane] = x1;
    p.y1[lane] = y1;
    p.x2[lane] = x2;
    p.y2[lane] = y2;
    p.area[lane] = area;
    ++fill_[c];
  }

  // True iff some kept box has IoU(kept, box) > threshold (IoU computed exactly as box_iou).
  bool any_above(T x1, T y1, T x2, T y2, T area, T threshold) const {
    int64_t cx0 = 0, cx1 = nx_ - 1, cy0 = 0, cy1 = ny_ - 1;
    if (!unbounded_) {
      const double w = double(x2) - double(x1), h = double(y2) - double(y1);
      const double slack = 1.0 + 1e-6;
      const double left_x = std::min(max_w_, q_ * w) * slack, right_x = std::min(w, q_ * w) * slack;
      const double left_y = std::min(max_h_, q_ * h) * slack, right_y = std::min(h, q_ * h) * slack;
      const double ax = std::abs(double(x1)) * 1e-12, ay = std::abs(double(y1)) * 1e-12;
      cx0 = index(double(x1) - left_x - ax, x0_, inv_x_, nx_);
      cx1 = index(double(x1) + right_x + ax, x0_, inv_x_, nx_);
      cy0 = index(double(y1) - left_y - ay, y0_, inv_y_, ny_);
      cy1 = index(double(y1) + right_y + ay, y0_, inv_y_, ny_);
    }
    // The cell of the box's own corner first: a suppressor's corner is close to it, and most
    // suppressed boxes (clustered inputs) then stop after one cell.
    const int64_t own = cell(x1, y1);
    if (test_cell(own, x1, y1, x2, y2, area, threshold)) {
      return true;
    }
    for (int64_t cy = cy0; cy <= cy1; ++cy) {
      for (int64_t cx = cx0; cx <= cx1; ++cx) {
        const int64_t c = cy * nx_ + cx;
        if (c != own && test_cell(c, x1, y1, x2, y2, area, threshold)) {
          return true;
        }
      }
    }
    return false;
  }

 private:
  static void axis(
      double lo, double hi, double side_hint, int64_t max_cells, double& origin, double& inv,
      int64_t& n) {
    origin = 0.0;
    inv = 0.0;
    n = 1;
    const double extent = hi - lo;
    if (!(extent > 0.0) || !std::isfinite(extent)) {
      return;  // all corners on one line, or a range that overflows: one cell
    }
    const double side = std::max(side_hint, extent / static_cast<double>(max_cells));
    const double cells = std::ceil(extent / side);
    if (!(side > 0.0) || !std::isfinite(cells)) {
      return;
    }
    origin = lo;
    inv = 1.0 / side;
    n = std::max<int64_t>(1, std::min<int64_t>(max_cells, static_cast<int64_t>(cells)));
  }

  static int64_t index(double v, double origin, double inv, int64_t n) {
    const double c = std::floor((v - origin) * inv);
    // Clamped in double before the conversion, which would overflow for a far-off box.
    return static_cast<int64_t>(std::min(std::max(c, 0.0), static_cast<double>(n - 1)));
  }

  int64_t cell(T x1, T y1) const {
    return index(double(y1), y0_, inv_y_, ny_) * nx_ + index(double(x1), x0_, inv_x_, nx_);
  }

  bool test_cell(int64_t c, T x1, T y1, T x2, T y2, T area, T threshold) const {
    for (int64_t i = head_[static_cast<size_t>(c)]; i != kNone;) {
      const Pack& p = packs_[static_cast<size_t>(i)];
      if (pack_any_above(p, x1, y1, x2, y2, area, threshold)) {
        return true;
      }
      i = p.next;
    }
    return false;
  }

  static Pack empty_pack(int64_t next) {
    Pack p;
    p.next = next;
    const T inf = std::numeric_limits<T>::infinity();
    for (int k = 0; k < kLanes; ++k) {
      // x2 - x1 = -inf: an empty intersection with any box, so IoU 0.
      p.x1[k] = inf;
      p.y1[k] = inf;
      p.x2[k] = -inf;
      p.y2[k] = -inf;
      p.area[k] = T(0);
    }
    return p;
  }

  // Lane results go to an int array and are OR-ed afterwards: GCC vectorises this form, not a
  // running `bool |=` (measured: scalar minss/divss per lane).
  static bool pack_any_above(const Pack& p, T x1, T y1, T x2, T y2, T area, T threshold) {
    int hit[kLanes];
    for (int k = 0; k < kLanes; ++k) {
      const T w = min2(p.x2[k], x2) - max2(p.x1[k], x1);
      const T h = min2(p.y2[k], y2) - max2(p.y1[k], y1);
      const T inter = clamp_min0(w) * clamp_min0(h);
      hit[k] = iou_from_areas(inter, p.area[k], area) > threshold ? -1 : 0;
    }
    int any = 0;
    for (int k = 0; k < kLanes; ++k) {
      any |= hit[k];
    }
    return any != 0;
  }

  double x0_ = 0.0, y0_ = 0.0, inv_x_ = 0.0, inv_y_ = 0.0;
  double max_w_ = 0.0, max_h_ = 0.0, q_ = 0.0;
  bool unbounded_ = false;
  int64_t nx_ = 1, ny_ = 1;
  static constexpr int64_t kNone = -1;
  std::vector<Pack> packs_;    // every cell's packs; a group holds at most one per kept box
  std::vector<int64_t> head_;  // per cell: its newest pack, or kNone
  std::vector<int64_t> fill_;  // per cell: kept boxes filed there
};

}  // namespace frcnn_fast
