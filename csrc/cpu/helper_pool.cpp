// The helper threads of split calls (parallel.h). ATen's inter-op pool would do, but its threads
// sleep on a condition variable as soon as they are idle: each split call then pays a wake-up
// (tens of microseconds on a VM) before a helper takes a piece, as much as the whole work of a
// small call. These helpers poll for the next call for a short while first, as OpenMP's threads
// do, so back-to-back calls (an IoU, then a decode, then a clip) find them awake. The caller
// never waits for a helper (ClaimedPieces), so a helper that is asleep or preempted costs the
// call only its share of the pieces, never a time slice.
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "parallel.h"

namespace frcnn_fast {
namespace detail {
namespace {

// How long an idle helper polls for the next call before it sleeps. Long enough to span the
// Python between two ops; short enough that an idle process gives its cores back at once.
constexpr std::chrono::microseconds kPollForNextCall{200};

class HelperPool {
 public:
  // Queues `helpers` turns at `job`: each helper that takes one runs job->work(), which returns
  // at once when the caller (or another helper) has claimed every piece already.
  void post(const std::shared_ptr<ClaimedPieces>& job, int64_t helpers) {
    std::lock_guard<std::mutex> lock(mutex_);
    while (threads_ < helpers) {
      std::thread([this] { loop(); }).detach();
      ++threads_;
    }
    for (int64_t h = 0; h < helpers; ++h) {
      queue_.push_back(job);
    }
    queued_.store(static_cast<int64_t>(queue_.size()), std::memory_order_release);
    for (int64_t h = 0; h < std::min(helpers, sleeping_); ++h) {
      wake_.notify_one();
    }
  }

 private:
  [[noreturn]] void loop() {
    for (;;) {
      const auto give_up = std::chrono::steady_clock::now() + kPollForNextCall;
      while (queued_.load(std::memory_order_acquire) == 0 &&
             std::chrono::steady_clock::now() < give_up) {
        cpu_relax();
      }
      std::shared_ptr<ClaimedPieces> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ++sleeping_;
        wake_.wait(lock, [this] { return !queue_.empty(); });
        --sleeping_;
        job = std::move(queue_.front());
        queue_.pop_front();
        queued_.store(static_cast<int64_t>(queue_.size()), std::memory_order_release);
      }
      job->work();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<ClaimedPieces>> queue_;  // guarded by mutex_
  int64_t threads_ = 0;                               // guarded by mutex_
  int64_t sleeping_ = 0;                              // guarded by mutex_
  std::atomic<int64_t> queued_{0};                    // queue_.size(), for the polling
};

// The pool of this process. Never destroyed: detached helpers may still poll it while the
// interpreter exits. A forked child has none of the parent's threads (and maybe a lock some
// parent thread held), so it starts a pool of its own.
HelperPool* pool = nullptr;
std::once_flag pool_once;

void start_pool() {
  pool = new HelperPool();
}

}  // namespace

void post_to_helpers(const std::shared_ptr<ClaimedPieces>& job, int64_t helpers) {
  std::call_once(pool_once, [] {
    start_pool();
    pthread_atfork(nullptr, nullptr, start_pool);  // in the child
  });
  pool->post(job, helpers);
}

}  // namespace detail
}  // namespace frcnn_fast
