#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "parallel.h"

// How the CPU RoI kernels share their work out over threads.

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

// Channels per roi_pool backward task: as many as leave each thread two tasks. Its cost is
// reading argmax and gradient, which stream only in long runs (a RoI's [block, bins] slice in
// NCHW, `block` channels of each bin in NHWC); the block's gradient planes that the adds
// scatter into stay in L2 or L3 either way. Measured here, R = 2,000 on 2x512x50x50: 52-channel
// blocks took 2.3x (NHWC) and 1.1x (NCHW) the time of 256-channel ones.
inline int64_t streaming_channel_block(int64_t channels, int64_t batch_size) {
  const int64_t threads = at::get_num_threads();
  const int64_t per_image = std::max<int64_t>(1, (2 * threads + batch_size - 1) / batch_size);
  return std::max<int64_t>(1, (channels + per_image - 1) / per_image);
}

// Row stride, in elements, of a per-RoI [bin][channel] tile that is then read a column at a
// time (a channel's bins, to write NCHW rows): the channels plus one cache line. With a power
// of two channels, rows 2 KB apart all map to two of the 64 sets of a 32 KB 8-way L1, so the
// 49 rows of a 7x7 tile evicted each other on every column (the NCHW output's transpose took
// 60% of roi_pool's forward); a line of padding gives each row its own set.
template <typename T>
constexpr int64_t tile_stride(int64_t channels) {
  return channels + static_cast<int64_t>(64 / sizeof(T));
}

// Work is counted in (bin, channel) outputs or gradient cells: each is a few samples or a max
// over a bin, a few nanoseconds, so kGrain of them make a task worth a thread wake-up. A call
// with a few small RoIs then runs on the calling thread instead of waiting on a busy one.

// Least RoIs per forward task.
inline int64_t forward_grain(int64_t channels, int64_t bins) {
  return grain_for(channels * bins);
}

// Least (image, channel block) backward tasks per thread; a task visits its image's share of
// the RoIs for `block` channels.
inline int64_t backward_grain(int64_t rois, int64_t batch_size, int64_t bins, int64_t block) {
  const int64_t rois_per_image = std::max<int64_t>(1, rois / std::max<int64_t>(1, batch_size));
  return grain_for(rois_per_image * bins * block);
}

}  // namespace frcnn_fast
