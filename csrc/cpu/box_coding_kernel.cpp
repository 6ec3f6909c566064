#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <algorithm>

#include "../box_coding.h"
#include "../common/box_math.h"
#include "parallel.h"

namespace frcnn_fast {
namespace {

at::Tensor encode_boxes_cpu(
    const at::Tensor& reference_boxes, const at::Tensor& target_boxes,
    c10::ArrayRef<double> weights) {
  check_encode_boxes_inputs(reference_boxes, target_boxes, weights);
  const at::Tensor ref = reference_boxes.contiguous();
  const at::Tensor tgt = target_boxes.contiguous();
  at::Tensor out = at::empty_like(ref);
  const int64_t n = ref.numel() / 4;
  if (n == 0) {
    return out;
  }
  FRCNN_DISPATCH_FLOATING_TYPES(ref.scalar_type(), "encode_boxes_cpu", [&] {
    using T = at::opmath_type<scalar_t>;
    const BoxWeights<T> wt = to_weights<T>(weights);
    const scalar_t* pr = ref.const_data_ptr<scalar_t>();
    const scalar_t* pt = tgt.const_data_ptr<scalar_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    parallel_for_boxes(n, box_cost::kEncode, [&](int64_t i) {
      T r[4], t[4], d[4];
      load_box(pr + 4 * i, r);
      load_box(pt + 4 * i, t);
      encode_box(r, t, wt, d);
      store_box(d, o + 4 * i);
    });
  });
  return out;
}

at::Tensor decode_boxes_cpu(
    const at::Tensor& deltas, const at::Tensor& reference_boxes, c10::ArrayRef<double> weights,
    double clamp) {
  check_decode_boxes_inputs(deltas, reference_boxes, weights, clamp);
  const at::Tensor d = deltas.contiguous();
  const at::Tensor ref = reference_boxes.contiguous();
  at::Tensor out = at::empty_like(d);
  // deltas[N, 4K]: K boxes (e.g. one per class) share each reference box.
  const int64_t per_ref = d.size(1) / 4;
  const int64_t n = d.size(0) * per_ref;
  if (n == 0) {
    return out;
  }
  FRCNN_DISPATCH_FLOATING_TYPES(d.scalar_type(), "decode_boxes_cpu", [&] {
    using T = at::opmath_type<scalar_t>;
    const BoxWeights<T> wt = to_weights<T>(weights);
    const T cap = static_cast<T>(clamp);
    const scalar_t* pd = d.const_data_ptr<scalar_t>();
    const scalar_t* pr = ref.const_data_ptr<scalar_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    // Box i applies deltas i to reference i / per_ref: a range walks the references in order,
    // each put in centre form once for its run of deltas (and no division per box).
    parallel_for_work(n, grain_for(box_cost::kDecode), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end;) {
        const int64_t k = i / per_ref;
        T r[4];
        load_box(pr + 4 * k, r);
        const CentreForm<T> ref_form = centre_form(r);
        for (const int64_t run_end = std::min(end, (k + 1) * per_ref); i < run_end; ++i) {
          T delta[4], box[4];
          load_box(pd + 4 * i, delta);
          decode_box(delta, ref_form, wt, cap, box);
          store_box(box, o + 4 * i);
        }
      }
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(frcnn_fast, CPU, m) {
  m.impl("encode_boxes", &encode_boxes_cpu);
  m.impl("decode_boxes", &decode_boxes_cpu);
}

}  // namespace frcnn_fast
