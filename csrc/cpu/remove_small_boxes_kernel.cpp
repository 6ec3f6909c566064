#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../common/box_math.h"
#include "../remove_small_boxes.h"
#include "parallel.h"

namespace frcnn_fast {
namespace {

// Two passes over contiguous chunks: count the survivors of each chunk,
// then write their indices at the chunk's offset in an exactly-sized output. Both passes are
// branchless (half the boxes surviving would otherwise mispredict every other branch).
template <typename scalar_t>
at::Tensor compact_large_boxes(const scalar_t* boxes, int64_t n, double min_size) {
  using T = at::opmath_type<scalar_t>;
  const T min_side = static_cast<T>(min_size);
  auto large_enough = [&](int64_t i) -> int64_t {
    T box[4];
    load_box(boxes + 4 * i, box);
    return (box[2] - box[0] >= min_side) & (box[3] - box[1] >= min_side);
  };
  const int64_t chunks = parallel_chunks(n, kGrain);
  const int64_t chunk = (n + chunks - 1) / chunks;
  std::vector<int64_t> offsets(chunks + 1, 0);
  parallel_for_work(chunks, 1, [&](int64_t first, int64_t last) {
    for (int64_t c = first; c < last; ++c) {
      int64_t count = 0;
      for (int64_t i = c * chunk; i < std::min(n, (c + 1) * chunk); ++i) {
        count += large_enough(i);
      }
      offsets[c + 1] = count;
    }
  });
  for (int64_t c = 0; c < chunks; ++c) {
    offsets[c + 1] += offsets[c];
  }
  at::Tensor keep = at::empty({offsets[chunks]}, at::TensorOptions().dtype(at::kLong));
  int64_t* out = keep.mutable_data_ptr<int64_t>();
  parallel_for_work(chunks, 1, [&](int64_t first, int64_t last) {
    for (int64_t c = first; c < last; ++c) {
      const int64_t end = offsets[c + 1];
      int64_t pos = offsets[c];
      int64_t spill;  // where a dropped box's index goes once this chunk's slots are full
      for (int64_t i = c * chunk; i < std::min(n, (c + 1) * chunk); ++i) {
        *(pos < end ? out + pos : &spill) = i;
        pos += large_enough(i);
      }
    }
  });
  return keep;
}

at::Tensor remove_small_boxes_cpu(const at::Tensor& boxes, double min_size) {
  check_remove_small_boxes_inputs(boxes, min_size);
  const at::Tensor b = boxes.contiguous();
  const int64_t n = b.size(0);
  if (n == 0) {
    return at::empty({0}, b.options().dtype(at::kLong));
  }
  at::Tensor keep;
  FRCNN_DISPATCH_FLOATING_TYPES(b.scalar_type(), "remove_small_boxes_cpu", [&] {
    keep = compact_large_boxes(b.const_data_ptr<scalar_t>(), n, min_size);
  });
  return keep;
}

}  // namespace

TORCH_LIBRARY_IMPL(frcnn_fast, CPU, m) {
  m.impl("remove_small_boxes", &remove_small_boxes_cpu);
}

}  // namespace frcnn_fast
