#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "../common/box_math.h"
#include "../remove_small_boxes.h"

namespace frcnn_fast {
namespace {

at::Tensor remove_small_boxes_cpu(const at::Tensor& boxes, double min_size) {
  check_remove_small_boxes_inputs(boxes, min_size);
  const at::Tensor b = boxes.contiguous();
  const int64_t n = b.size(0);
  at::Tensor keep = at::empty({n}, b.options().dtype(at::kLong));
  int64_t count = 0;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, b.scalar_type(), "remove_small_boxes_cpu", [&] {
        using T = at::opmath_type<scalar_t>;
        const T min_side = static_cast<T>(min_size);
        const scalar_t* in = b.const_data_ptr<scalar_t>();
        int64_t* k = keep.mutable_data_ptr<int64_t>();
        // One ordered pass: a compaction is memory bound and a second thread only adds a
        // prefix-sum pass over the same data.
        for (int64_t i = 0; i < n; ++i) {
          T box[4];
          load_box(in + 4 * i, box);
          if (box[2] - box[0] >= min_side && box[3] - box[1] >= min_side) {
            k[count++] = i;
          }
        }
      });
  return keep.narrow(0, 0, count).clone();
}

}  // namespace

TORCH_LIBRARY_IMPL(frcnn_fast, CPU, m) {
  m.impl("remove_small_boxes", &remove_small_boxes_cpu);
}

}  // namespace frcnn_fast
