#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>

namespace frcnn_fast {

// Items of work per thread below which a call stays on the calling thread. An item is one box
// of an elementwise box op or one pair of a pairwise IoU: a few loads, a handful of flops and a
// store, about a nanosecond, so a task is at least some tens of microseconds. That is ATen's
// grain for elementwise ops (at::internal::GRAIN_SIZE). On an idle machine a thread wakes in
// microseconds, noise against a task; a call with less work than that stays on the calling
// thread, where waking a helper could not pay.
constexpr int64_t kGrain = 32768;

// Number of threads worth waking for n items of which each must get at least `grain`: one (the
// calling thread) below 2 * grain, never more than the intra-op threads.
inline int64_t parallel_tasks(int64_t n, int64_t grain) {
  const int64_t by_work = n / std::max<int64_t>(grain, 1);
  return std::max<int64_t>(1, std::min<int64_t>(by_work, at::get_num_threads()));
}

// Pieces per thread of a split call: small enough that the threads that run end at about the
// same time when one of them starts late, large enough (>= grain / 8 items) that claiming one
// is noise.
constexpr int64_t kPiecesPerTask = 8;

// Chunks to cut n items into when each chunk needs its own slot (a count, a partial maximum)
// and the chunks are then run with parallel_for_work(chunks, 1, ...): one when the call stays
// on the calling thread, else kPiecesPerTask per thread.
inline int64_t parallel_chunks(int64_t n, int64_t grain) {
  const int64_t tasks = parallel_tasks(n, grain);
  return tasks == 1 ? 1 : std::min(n, tasks * kPiecesPerTask);
}

namespace detail {

// Whether this thread is running a piece of a split call: a split call made from inside one
// runs on its thread alone, as at::parallel_for does inside a parallel region (the threads are
// taken by the outer call already).
inline bool& running_a_piece() {
  thread_local bool running = false;
  return running;
}

class InSplitCall {
 public:
  InSplitCall() : outer_(running_a_piece()) { running_a_piece() = true; }
  ~InSplitCall() { running_a_piece() = outer_; }
  InSplitCall(const InSplitCall&) = delete;
  InSplitCall& operator=(const InSplitCall&) = delete;

 private:
  const bool outer_;
};

// How long the caller of a split call polls for the last pieces before it sleeps.
constexpr std::chrono::microseconds kPollBeforeSleep{50};

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// A split call's pieces, claimed one at a time by the caller and its helpers. Helpers hold it
// by shared_ptr: a helper that starts after the call has returned finds nothing to claim and
// never touches `body`, which lives on the caller's stack. `body` is alive while any claimed
// piece is unfinished, since the caller returns only once every piece is finished.
class ClaimedPieces {
 public:
  using Body = std::function<void(int64_t, int64_t)>;

  ClaimedPieces(int64_t n, int64_t pieces, const Body* body)
      : n_(n), pieces_(pieces), body_(body) {}

  // Runs pieces until none is left to claim.
  void work() {
    const InSplitCall in_split_call;
    for (;;) {
      const int64_t p = next_.fetch_add(1, std::memory_order_relaxed);
      if (p >= pieces_) {
        return;
      }
      const int64_t begin = n_ * p / pieces_;
      const int64_t end = n_ * (p + 1) / pieces_;
      try {
        (*body_)(begin, end);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) {
          error_ = std::current_exception();
        }
      }
      // Counted under the mutex (once per piece: noise against a piece's work), so that what
      // the piece wrote is ordered before the caller's return by a lock that every tool sees,
      // ThreadSanitizer included.
      {
        std::lock_guard<std::mutex> lock(mutex_);
        finished_seen_.store(++finished_, std::memory_order_release);
        if (finished_ == pieces_) {
          all_finished_.notify_all();
        }
      }
    }
  }

  // Waits for the pieces other threads claimed and are still running (never for a helper that
  // has not started: its pieces were claimed by whoever got there first), then rethrows the
  // first error any piece raised.
  void wait() {
    // What is left ends within microseconds (pieces are small): poll before sleeping, since a
    // sleep on the condition variable and the wake-up cost tens of microseconds, as much as a
    // small call's whole work. Bounded, so that a helper preempted mid-piece costs the caller
    // little more than that. The lock below still orders the pieces' writes before the return.
    const auto give_up = std::chrono::steady_clock::now() + kPollBeforeSleep;
    while (finished_seen_.load(std::memory_order_acquire) != pieces_ &&
           std::chrono::steady_clock::now() < give_up) {
      cpu_relax();
    }
    std::unique_lock<std::mutex> lock(mutex_);
    all_finished_.wait(lock, [this] { return finished_ == pieces_; });
    if (error_) {
      std::rethrow_exception(error_);
    }
  }

 private:
  const int64_t n_, pieces_;
  const Body* const body_;
  std::atomic<int64_t> next_{0};
  std::mutex mutex_;
  int64_t finished_ = 0;                   // guarded by mutex_
  std::atomic<int64_t> finished_seen_{0};  // finished_, for wait()'s polling
  std::condition_variable all_finished_;
  std::exception_ptr error_;
};

// Gives `helpers` threads of this process's helper pool (helper_pool.cpp) a turn at `job`.
void post_to_helpers(const std::shared_ptr<ClaimedPieces>& job, int64_t helpers);

}  // namespace detail

// Calls f(begin, end) on contiguous ranges that cover [0, n) once, on up to parallel_tasks(n,
// grain) threads; on the calling thread alone when that is one. `grain` is the least work a
// thread is woken for (at::parallel_for's grain would split n = 1.5 * grain in two).
//
// The split never makes the caller wait for a thread that is not running. An OpenMP region (as
// at::parallel_for forks) joins every thread it woke; on a busy machine a woken thread can wait
// a scheduler time slice (milliseconds) for a core, and the caller with it, for work it could
// have done itself in microseconds. Here the range is cut into pieces that the caller and its
// helpers (helper_pool.cpp) claim from a shared counter: a helper that starts
// late finds fewer pieces or none, and the caller waits only for pieces already being run. So
// a call is never much slower than on one thread, and as fast as on all of them when they are
// free. f must give the same result whichever thread runs a piece and however [0, n) is cut.
template <typename F>
inline void parallel_for_work(int64_t n, int64_t grain, const F& f) {
  const int64_t tasks = parallel_tasks(n, grain);
  if (tasks == 1 || detail::running_a_piece() || at::in_parallel_region()) {
    if (n > 0) {
      f(int64_t{0}, n);
    }
    return;
  }
  const detail::ClaimedPieces::Body body = [&f](int64_t begin, int64_t end) { f(begin, end); };
  auto pieces =
      std::make_shared<detail::ClaimedPieces>(n, std::min(n, tasks * kPiecesPerTask), &body);
  detail::post_to_helpers(pieces, tasks - 1);
  pieces->work();
  pieces->wait();
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

// The grain, in units of work (boxes, rows, RoIs), when a unit costs `cost` elementwise items.
inline int64_t grain_for(int64_t cost) {
  return std::max<int64_t>(1, kGrain / std::max<int64_t>(cost, 1));
}

// Calls f(i) for every box i in [0, n), where a box costs `cost` elementwise items: on several
// threads from 2 * kGrain / cost boxes.
template <typename F>
inline void parallel_for_boxes(int64_t n, int64_t cost, const F& f) {
  parallel_for_work(n, grain_for(cost), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      f(i);
    }
  });
}

}  // namespace frcnn_fast
