#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

namespace frcnn_fast {

// Items of work per thread below which a call stays on the calling thread. An item is one box
// of an elementwise box op or one pair of a pairwise IoU: a few loads, a handful of flops and a
// store, about a nanosecond, so a task is at least some tens of microseconds. That is ATen's
// grain for elementwise ops (at::internal::GRAIN_SIZE). On an idle machine a thread wakes in
// microseconds, noise against a task; on a busy one it waits for a core for up to a scheduler
// time slice (milliseconds) and the caller waits at the join, so work that a single thread does
// in microseconds must not be split at all.
constexpr int64_t kGrain = 32768;

// Number of tasks for n items of which each task must have at least `grain`: one (the calling
// thread) below 2 * grain, never more than the intra-op threads.
inline int64_t parallel_tasks(int64_t n, int64_t grain) {
  const int64_t by_work = n / std::max<int64_t>(grain, 1);
  return std::max<int64_t>(1, std::min<int64_t>(by_work, at::get_num_threads()));
}

// Calls f(begin, end) over [0, n) split into parallel_tasks(n, grain) contiguous ranges, one
// per thread; on the calling thread alone when there is one. Unlike at::parallel_for's grain
// (which splits n = 1.5 * grain in two), `grain` here is the least work a thread is woken for.
template <typename F>
inline void parallel_for_work(int64_t n, int64_t grain, const F& f) {
  const int64_t tasks = parallel_tasks(n, grain);
  if (tasks == 1) {
    f(int64_t{0}, n);
    return;
  }
  at::parallel_for(0, tasks, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      f(n * t / tasks, n * (t + 1) / tasks);
    }
  });
}

// What one box costs each op, in elementwise items (box_area's: about half a nanosecond per box
// on one thread here). The grain is kGrain items of work, so an op whose box costs 16 items
// (a log or an exp per side) is split from 2 * kGrain / 16 boxes instead of staying on one
// thread up to where an area would have been split.
namespace box_cost {
constexpr int64_t kElementwise = 1;  // area, format conversion
constexpr int64_t kClip = 3;
constexpr int64_t kIouAligned = 3;
constexpr int64_t kEncode = 10;  // two logs and four divisions
constexpr int64_t kDecode = 16;  // two exps, clamped
// One row of the pairwise IoU: a pair is about one item, and the row's own box loads, its
// area and the loop set-up cost about six.
constexpr int64_t iou_row(int64_t m) {
  return m + 6;
}
}  // namespace box_cost

// Calls f(i) for every box i in [0, n), where a box costs `cost` elementwise items: on several
// threads from 2 * kGrain / cost boxes.
template <typename F>
inline void parallel_for_boxes(int64_t n, int64_t cost, const F& f) {
  parallel_for_work(
      n, std::max<int64_t>(1, kGrain / std::max<int64_t>(cost, 1)),
      [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          f(i);
        }
      });
}

}  // namespace frcnn_fast
