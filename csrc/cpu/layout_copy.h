#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>

#include "../common/macros.h"
#include "parallel.h"

namespace frcnn_fast {

// A channels-last [N, C, H, W] tensor copied into a fresh NCHW one (standard strides): per
// image, a blocked transpose of [H*W][C] into [C][H*W]. The RoI backward passes sum their
// gradient channels-last and return it in the input's layout; torch's own copy from
// channels-last to NCHW took 18 ms here for a 2x512x50x50 float32 map on one thread (2 ms the
// other way), as much as a small backward itself. A copy: the same bits.
inline at::Tensor channels_last_to_nchw(const at::Tensor& src) {
  TORCH_CHECK(
      src.dim() == 4 && src.is_contiguous(at::MemoryFormat::ChannelsLast),
      "channels_last_to_nchw needs a channels-last 4-d tensor, got ", src.sizes(), " with strides ",
      src.strides());
  at::Tensor dst =
      at::empty(src.sizes(), src.options().memory_format(at::MemoryFormat::Contiguous));
  const int64_t images = src.size(0), c_n = src.size(1), cells = src.size(2) * src.size(3);
  if (dst.numel() == 0) return dst;
  // A tile's 32 channels of 32 cells: both sides' cache lines used whole (floats or doubles).
  constexpr int64_t kTile = 32;
  const int64_t channel_tiles = (c_n + kTile - 1) / kTile;
  FRCNN_DISPATCH_FLOATING_TYPES(src.scalar_type(), "channels_last_to_nchw", [&] {
    const scalar_t* s = src.const_data_ptr<scalar_t>();
    scalar_t* d = dst.mutable_data_ptr<scalar_t>();
    // A task: one image's block of kTile channels over every cell.
    parallel_for_work(
        images * channel_tiles, grain_for(cells * kTile), [&](int64_t t0, int64_t t1) {
          for (int64_t t = t0; t < t1; ++t) {
            const int64_t n = t / channel_tiles;
            const int64_t c0 = (t % channel_tiles) * kTile;
            const int64_t c1 = std::min(c_n, c0 + kTile);
            const scalar_t* si = s + n * cells * c_n;
            scalar_t* di = d + n * c_n * cells;
            for (int64_t p0 = 0; p0 < cells; p0 += kTile) {
              const int64_t p1 = std::min(cells, p0 + kTile);
              for (int64_t c = c0; c < c1; ++c) {
                for (int64_t p = p0; p < p1; ++p) di[c * cells + p] = si[p * c_n + c];
              }
            }
          }
        });
  });
  return dst;
}

}  // namespace frcnn_fast
