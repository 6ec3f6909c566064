#pragma once
// Host- and device-side pieces shared by the RoI pooling and RoIAlign CUDA kernels.
#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>

#include "../common/macros.h"
#include "../common/roi_index.h"
#include "../common/roi_layout.h"
#include "../common/roi_params.h"
#include "device.cuh"

namespace frcnn_fast {

// (k, c, ph, pw) of element i of a [K, C, PH, PW] tensor stored NCHW or NHWC.
FRCNN_HOST_DEVICE void pooled_index(
    int64_t i, bool channels_last, int64_t channels, int64_t pooled_h, int64_t pooled_w, int64_t& k,
    int64_t& c, int64_t& ph, int64_t& pw) {
  if (channels_last) {
    c = i % channels;
    pw = (i / channels) % pooled_w;
    ph = (i / channels / pooled_w) % pooled_h;
    k = i / channels / pooled_w / pooled_h;
  } else {
    pw = i % pooled_w;
    ph = (i / pooled_w) % pooled_h;
    c = (i / pooled_w / pooled_h) % channels;
    k = i / pooled_w / pooled_h / channels;
  }
}

FRCNN_HOST_DEVICE int64_t pooled_offset(
    bool channels_last, int64_t k, int64_t c, int64_t ph, int64_t pw, int64_t channels,
    int64_t pooled_h, int64_t pooled_w) {
  return channels_last ? ((k * pooled_h + ph) * pooled_w + pw) * channels + c
                       : ((k * channels + c) * pooled_h + ph) * pooled_w + pw;
}

// Element offset of (n, c, y, x) in an [N, C, H, W] tensor stored NCHW or NHWC (channels-last).
FRCNN_HOST_DEVICE int64_t nchw_offset(
    bool channels_last, int64_t n, int64_t c, int64_t y, int64_t x, int64_t channels,
    int64_t height, int64_t width) {
  return channels_last ? ((n * height + y) * width + x) * channels + c
                       : ((n * channels + c) * height + y) * width + x;
}

// Validates every value a kernel will index memory with (the RoIs' batch indices and, where
// given, FPN levels and roi_pool argmax cells) before any kernel runs, and returns the batch
// indices as int64 on the device.
//
// This costs ONE host sync (`.item()` on a single device-side flag) per call. It is deliberate:
// a bad batch index must be a clear TORCH_CHECK error naming the argument (as on the CPU), and
// an error can only be raised on the host. (torchvision checks nothing and reads out of
// bounds.) The kernels do not depend on this check for memory safety: each one also skips a
// RoI whose batch index or level is out of range and an argmax outside [0, H*W), so dropping
// the check (e.g. for CUDA-graph capture) could never turn a bad index into a stray read.
// Only on failure are the values copied to the host, to name the offending row.
inline at::Tensor checked_batch_index(
    const at::Tensor& boxes, int64_t batch_size, const at::Tensor& levels = at::Tensor(),
    int64_t num_levels = 0, const at::Tensor& argmax = at::Tensor(), int64_t plane = 0) {
  const at::Tensor col = boxes.select(1, 0);
  // NaN != floor(NaN), +-inf fails a bound: one expression covers non-integers and non-finites.
  at::Tensor bad = col.ne(col.floor()).logical_or_(col.lt(0)).logical_or_(col.ge(batch_size)).any();
  if (levels.defined()) {
    bad.logical_or_(levels.lt(0).logical_or_(levels.ge(num_levels)).any());
  }
  if (argmax.defined()) {
    bad.logical_or_(argmax.lt(-1).logical_or_(argmax.ge(plane)).any());
  }
  if (bad.item<bool>()) {
    // Slow path, only on error: the CPU checks raise the message naming row and argument.
    roi_batch_indices(boxes.cpu(), batch_size);
    if (levels.defined()) roi_levels(levels.cpu(), num_levels);
    TORCH_CHECK(false, "argmax must be -1 or in [0, H*W) = [0, ", plane, ")");
  }
  return col.to(at::kLong);
}

// The RoIs of each image in index order, for the deterministic backward kernels: image n owns
// order[offsets[n] .. offsets[n+1]). A stable sort and a searchsorted, both on the device and
// sync-free.
struct DeviceRoisByImage {
  at::Tensor order, offsets;
};

inline DeviceRoisByImage group_by_image_device(const at::Tensor& batch, int64_t batch_size) {
  const auto sorted = at::sort(batch, /*stable=*/true, /*dim=*/0, /*descending=*/false);
  const at::Tensor values = std::get<0>(sorted);
  const at::Tensor order = std::get<1>(sorted).contiguous();
  const at::Tensor offsets =
      at::searchsorted(values, at::arange(batch_size + 1, batch.options())).contiguous();
  return {order, offsets};
}

// Task `task` of a deterministic backward: the gradient planes of image n, channels
// [c0, c0 + nc), out of `chunks` chunks of `chunk` channels per image.
struct DetTask {
  int64_t n, c0, nc;
};

FRCNN_HOST_DEVICE DetTask det_task(int64_t task, int64_t chunks, int64_t chunk, int64_t channels) {
  const int64_t c0 = (task % chunks) * chunk;
  return {task / chunks, c0, chunk < channels - c0 ? chunk : channels - c0};
}

// Channels per block of a deterministic backward: one block owns (image, channel chunk)
// gradient planes. More channels per block share one RoI's geometry set-up; fewer give more
// blocks. Any value gives the same bits (a pixel's sum order does not depend on it).
inline int64_t det_channel_chunk(int64_t batch_size, int64_t channels) {
  int64_t cb = 1;
  while (cb < 8 && batch_size * ((channels + 2 * cb - 1) / (2 * cb)) >= 1024) cb *= 2;
  return cb;
}

}  // namespace frcnn_fast
