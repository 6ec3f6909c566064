#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <cstdint>
#include <vector>

// Host-side reading of the RoIs' batch indices (and FPN levels): checked once, before any
// kernel touches memory through them, so a bad index is an error and never a stray read. The
// CPU kernels index with the values read here; the CUDA kernels check on the device and come
// here only to name the offending row (cuda/roi_common.cuh checked_batch_index).

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

}  // namespace frcnn_fast
