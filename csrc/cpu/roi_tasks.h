#pragma once

#include <ATen/Parallel.h>

#include <cstdint>
#include <vector>

// How the CPU RoI backward kernels share gradient planes out over threads.

namespace frcnn_fast {

// The RoIs of each image, in index order: image n owns order[offsets[n] .. offsets[n+1]).
// A backward task that owns image n's gradient planes visits exactly these, always in this
// order, which is what makes the CPU backward deterministic.
struct RoisByImage {
  std::vector<int64_t> offsets, order;
};

inline RoisByImage group_by_image(const std::vector<int64_t>& batch, int64_t batch_size) {
  RoisByImage g;
  g.offsets.assign(batch_size + 1, 0);
  for (int64_t b : batch) ++g.offsets[b + 1];
  for (int64_t n = 0; n < batch_size; ++n) g.offsets[n + 1] += g.offsets[n];
  g.order.resize(batch.size());
  std::vector<int64_t> next(g.offsets.begin(), g.offsets.end() - 1);
  for (size_t k = 0; k < batch.size(); ++k) g.order[next[batch[k]]++] = static_cast<int64_t>(k);
  return g;
}

// Channels per backward task: enough to amortise rebuilding a RoI's sample table, few enough
// to give every thread work. Any value gives the same bits (each channel plane is summed in
// the same order whichever task owns it).
inline int64_t channel_block(int64_t channels, int64_t batch_size) {
  const int64_t threads = at::get_num_threads();
  int64_t block = 64;
  while (block > 4 && batch_size * ((channels + block - 1) / block) < 4 * threads) block /= 2;
  return block;
}

}  // namespace frcnn_fast
