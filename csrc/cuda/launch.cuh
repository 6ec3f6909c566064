#pragma once

#include <algorithm>
#include <cstdint>

#include "device.cuh"

namespace frcnn_fast {

constexpr int kThreadsPerBlock = 256;

// Blocks for a grid-stride loop over n items. Callers return early on n == 0, so the grid is
// never empty; the cap keeps the grid legal for any n (the loop covers the rest).
inline unsigned int blocks_for(int64_t n, int threads = kThreadsPerBlock) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned int>(std::min<int64_t>(std::max<int64_t>(blocks, 1), max_grid_dim()));
}

}  // namespace frcnn_fast

// 64-bit grid-stride loop: products of sizes can pass 2^31.
#define FRCNN_GRID_STRIDE_LOOP(i, n)                                                     \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

// One checked grid-stride launch of `kernel` over n items on the current stream, none when
// n == 0 (a grid is never empty). For the one-item-per-thread kernels, whose host side is
// otherwise the same in every file.
#define FRCNN_LAUNCH_OVER(n, kernel, ...)                                         \
  do {                                                                            \
    if ((n) > 0) {                                                                \
      FRCNN_LAUNCH(                                                               \
          kernel, ::frcnn_fast::blocks_for(n), ::frcnn_fast::kThreadsPerBlock, 0, \
          ::frcnn_fast::current_stream())(__VA_ARGS__);                           \
      C10_CUDA_KERNEL_LAUNCH_CHECK();                                             \
    }                                                                             \
  } while (0)
