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

// A uniform grid over the kept boxes of a group, for the question "does any kept box have
// IoU > threshold with box j?". IoU > threshold >= 0 needs a positive intersection, so only
// kept boxes that share a cell with j can answer yes. Each kept box is stored in every cell it
// touches, in packs of kLanes boxes as columns so that testing a cell is a fixed-width loop
// the compiler vectorises; unused lanes hold a box that intersects nothing.
//
// Cell indices come from a monotone function of a coordinate (subtract, multiply, floor,
// clamp, all in double), so two boxes that overlap on an open set always share a cell, whatever
// the rounding.
template <typename T>
class KeptGrid {
 public:
  static constexpr int kLanes = 8;

  struct Pack {
    T x1[kLanes], y1[kLanes], x2[kLanes], y2[kLanes], area[kLanes];
  };

  // Geometry from the active boxes of the group: cells about one mean box side wide (a box then
  // touches a handful of cells), at most max_per_axis per axis.
  KeptGrid(const RankedBoxes<T>& b, int64_t begin, int64_t end, int64_t max_per_axis) {
    double xmin = std::numeric_limits<double>::infinity(), ymin = xmin;
    double xmax = -xmin, ymax = -xmin, sum_w = 0.0, sum_h = 0.0;
    int64_t count = 0;
    for (int64_t i = begin; i < end; ++i) {
      if (!b.active[i]) {
        continue;
      }
      const double x1 = b.x1[i], y1 = b.y1[i], x2 = b.x2[i], y2 = b.y2[i];
      xmin = std::min(xmin, x1);
      ymin = std::min(ymin, y1);
      xmax = std::max(xmax, x2);
      ymax = std::max(ymax, y2);
      sum_w += x2 - x1;
      sum_h += y2 - y1;
      ++count;
    }
    axis(xmin, xmax, count ? sum_w / count : 0.0, max_per_axis, x0_, inv_x_, nx_);
    axis(ymin, ymax, count ? sum_h / count : 0.0, max_per_axis, y0_, inv_y_, ny_);
    cells_.resize(static_cast<size_t>(nx_ * ny_));
    fill_.assign(static_cast<size_t>(nx_ * ny_), 0);
  }

  void insert(T x1, T y1, T x2, T y2, T area) {
    const int64_t cx0 = cell(x1, x0_, inv_x_, nx_), cx1 = cell(x2, x0_, inv_x_, nx_);
    const int64_t cy0 = cell(y1, y0_, inv_y_, ny_), cy1 = cell(y2, y0_, inv_y_, ny_);
    for (int64_t cy = cy0; cy <= cy1; ++cy) {
      for (int64_t cx = cx0; cx <= cx1; ++cx) {
        const size_t c = static_cast<size_t>(cy * nx_ + cx);
        std::vector<Pack>& packs = cells_[c];
        const int lane = fill_[c] % kLanes;
        if (lane == 0) {
          packs.push_back(empty_pack());
        }
        Pack& p = packs.back();
        p.x1[lane] = x1;
        p.y1[lane] = y1;
        p.x2[lane] = x2;
        p.y2[lane] = y2;
        p.area[lane] = area;
        ++fill_[c];
      }
    }
  }

  // True iff some kept box has IoU(kept, box) > threshold (IoU computed exactly as box_iou).
  bool any_above(T x1, T y1, T x2, T y2, T area, T threshold) const {
    const int64_t cx0 = cell(x1, x0_, inv_x_, nx_), cx1 = cell(x2, x0_, inv_x_, nx_);
    const int64_t cy0 = cell(y1, y0_, inv_y_, ny_), cy1 = cell(y2, y0_, inv_y_, ny_);
    for (int64_t cy = cy0; cy <= cy1; ++cy) {
      for (int64_t cx = cx0; cx <= cx1; ++cx) {
        for (const Pack& p : cells_[static_cast<size_t>(cy * nx_ + cx)]) {
          if (pack_any_above(p, x1, y1, x2, y2, area, threshold)) {
            return true;
          }
        }
      }
    }
    return false;
  }

 private:
  static void axis(
      double lo, double hi, double mean_side, int64_t max_cells, double& origin, double& inv,
      int64_t& n) {
    origin = 0.0;
    inv = 0.0;
    n = 1;
    const double extent = hi - lo;
    if (!(extent > 0.0) || !std::isfinite(extent)) {
      return;  // no active box, all on one line, or a range that overflows: one cell
    }
    const double side = std::max(mean_side, extent / static_cast<double>(max_cells));
    const double cells = std::ceil(extent / side);
    if (!(side > 0.0) || !std::isfinite(cells)) {
      return;
    }
    origin = lo;
    inv = 1.0 / side;
    n = std::max<int64_t>(1, std::min<int64_t>(max_cells, static_cast<int64_t>(cells)));
  }

  static int64_t cell(T v, double origin, double inv, int64_t n) {
    const double c = std::floor((static_cast<double>(v) - origin) * inv);
    // Clamped in double before the conversion, which would overflow for a far-off box.
    return static_cast<int64_t>(std::min(std::max(c, 0.0), static_cast<double>(n - 1)));
  }

  static Pack empty_pack() {
    Pack p;
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

  static bool pack_any_above(const Pack& p, T x1, T y1, T x2, T y2, T area, T threshold) {
    bool hit = false;
    for (int k = 0; k < kLanes; ++k) {
      const T w = min2(p.x2[k], x2) - max2(p.x1[k], x1);
      const T h = min2(p.y2[k], y2) - max2(p.y1[k], y1);
      const T inter = clamp_min0(w) * clamp_min0(h);
      hit |= iou_from_areas(inter, p.area[k], area) > threshold;
    }
    return hit;
  }

  double x0_ = 0.0, y0_ = 0.0, inv_x_ = 0.0, inv_y_ = 0.0;
  int64_t nx_ = 1, ny_ = 1;
  std::vector<std::vector<Pack>> cells_;
  std::vector<int64_t> fill_;
};

}  // namespace frcnn_fast
