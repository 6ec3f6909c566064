#pragma once

#include <ATen/Parallel.h>

namespace frcnn_fast {

// Boxes per task: below this a second thread costs more to wake than the work it takes over.
constexpr int64_t kBoxGrain = 8192;

// Calls f(i) for i in [0, n), split across the intra-op thread pool.
template <typename F>
inline void parallel_for_boxes(int64_t n, const F& f) {
  at::parallel_for(0, n, kBoxGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      f(i);
    }
  });
}

}  // namespace frcnn_fast
