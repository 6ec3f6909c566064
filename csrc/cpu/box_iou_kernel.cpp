#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <vector>

#include "../box_iou.h"
#include "../common/box_math.h"
#include "../common/large_output.h"
#include "parallel.h"

namespace frcnn_fast {
namespace {

// boxes2 as a structure of arrays in the math type, areas precomputed.
template <typename T>
struct BoxColumns {
  std::vector<T> x1, y1, x2, y2, area;
};

// One output row: IoU of `box` with every column. The arrays arrive as restrict pointers by
// value (not through a lambda's captured references) so the compiler may assume the stores
// to `row` alias nothing and vectorise the loop.
template <typename T, typename scalar_t>
void box_iou_row(
    const T* box, T area, const T* __restrict x1, const T* __restrict y1, const T* __restrict x2,
    const T* __restrict y2, const T* __restrict areas, int64_t m, scalar_t* __restrict row) {
  const T bx1 = box[0], by1 = box[1], bx2 = box[2], by2 = box[3];
  for (int64_t j = 0; j < m; ++j) {
    const T w = min2(bx2, x2[j]) - max2(bx1, x1[j]);
    const T h = min2(by2, y2[j]) - max2(by1, y1[j]);
    const T inter = clamp_min0(w) * clamp_min0(h);
    row[j] = static_cast<scalar_t>(iou_from_areas(inter, area, areas[j]));
  }
}

template <typename scalar_t>
void box_iou_rows(const scalar_t* a, const scalar_t* b, int64_t n, int64_t m, scalar_t* out) {
  using T = at::opmath_type<scalar_t>;
  BoxColumns<T> cols;
  for (auto* v : {&cols.x1, &cols.y1, &cols.x2, &cols.y2, &cols.area}) {
    v->resize(m);
  }
  for (int64_t j = 0; j < m; ++j) {
    T box[4];
    load_box(b + 4 * j, box);
    cols.x1[j] = box[0];
    cols.y1[j] = box[1];
    cols.x2[j] = box[2];
    cols.y2[j] = box[3];
    cols.area[j] = box_area(box[0], box[1], box[2], box[3]);
  }
  parallel_for_work(n, grain_for(box_cost::iou_row(m)), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      T box[4];
      load_box(a + 4 * i, box);
      box_iou_row(
          box, box_area(box[0], box[1], box[2], box[3]), cols.x1.data(), cols.y1.data(),
          cols.x2.data(), cols.y2.data(), cols.area.data(), m, out + i * m);
    }
  });
}

at::Tensor box_iou_cpu(const at::Tensor& boxes1, const at::Tensor& boxes2) {
  check_box_iou_inputs(boxes1, boxes2);
  const at::Tensor a = boxes1.contiguous();
  const at::Tensor b = boxes2.contiguous();
  const int64_t n = a.size(0);
  const int64_t m = b.size(0);
  at::Tensor out = empty_large_output({n, m}, a.options());
  if (out.numel() == 0) {
    return out;
  }
  FRCNN_DISPATCH_FLOATING_TYPES(a.scalar_type(), "box_iou_cpu", [&] {
    box_iou_rows(
        a.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(), n, m,
        out.mutable_data_ptr<scalar_t>());
  });
  return out;
}

at::Tensor box_iou_aligned_cpu(const at::Tensor& boxes1, const at::Tensor& boxes2) {
  check_box_iou_aligned_inputs(boxes1, boxes2);
  const at::Tensor a = boxes1.contiguous();
  const at::Tensor b = boxes2.contiguous();
  at::Tensor out = at::empty(a.sizes().slice(0, a.dim() - 1), a.options());
  const int64_t n = out.numel();
  if (n == 0) {
    return out;
  }
  FRCNN_DISPATCH_FLOATING_TYPES(a.scalar_type(), "box_iou_aligned_cpu", [&] {
    using T = at::opmath_type<scalar_t>;
    const scalar_t* pa = a.const_data_ptr<scalar_t>();
    const scalar_t* pb = b.const_data_ptr<scalar_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    parallel_for_boxes(n, box_cost::kIouAligned, [&](int64_t i) {
      T ba[4], bb[4];
      load_box(pa + 4 * i, ba);
      load_box(pb + 4 * i, bb);
      o[i] = static_cast<scalar_t>(box_iou(ba, bb));
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(frcnn_fast, CPU, m) {
  m.impl("box_iou", &box_iou_cpu);
  m.impl("box_iou_aligned", &box_iou_aligned_cpu);
}

}  // namespace frcnn_fast
