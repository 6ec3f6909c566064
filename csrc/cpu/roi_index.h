#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <cstdint>
#include <vector>

// Host-side reading of the RoIs' batch indices (and FPN levels): checked once, before any
// kernel touches memory through them, so a bad index is an error and never a stray read.

namespace frcnn_fast {

// boxes[:, 0] as int64, each an integer in [0, batch_size).
inline std::vector<int64_t> roi_batch_indices(const at::Tensor& boxes, int64_t batch_size) {
  const at::Tensor col = boxes.select(1, 0).to(at::kDouble).contiguous();
  const double* p = col.const_data_ptr<double>();
  const int64_t k = col.numel();
  std::vector<int64_t> out(k);
  for (int64_t i = 0; i < k; ++i) {
    const double v = p[i];
    TORCH_CHECK(
        std::isfinite(v) && v == std::floor(v),
        "boxes[:, 0] (batch index) must hold integers, got ", v, " in row ", i);
    TORCH_CHECK(
        v >= 0 && v < static_cast<double>(batch_size), "boxes batch index must be in [0, ",
        batch_size, "), got ", static_cast<int64_t>(v), " in row ", i);
    out[i] = static_cast<int64_t>(v);
  }
  return out;
}

// levels[k] in [0, num_levels); an empty vector when there is a single level.
inline std::vector<int64_t> roi_levels(const at::Tensor& levels, int64_t num_levels) {
  std::vector<int64_t> out;
  if (!levels.defined()) return out;
  const at::Tensor l = levels.contiguous();
  const int64_t* p = l.const_data_ptr<int64_t>();
  out.assign(p, p + l.numel());
  for (size_t i = 0; i < out.size(); ++i) {
    TORCH_CHECK(
        out[i] >= 0 && out[i] < num_levels, "levels must be in [0, ", num_levels, "), got ", out[i],
        " at ", i);
  }
  return out;
}

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
