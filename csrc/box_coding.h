#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>

#include "common/box_math.h"

namespace frcnn_fast {

// The schema's float[4] weights (already checked) in the kernel's math type.
template <typename T>
BoxWeights<T> to_weights(c10::ArrayRef<double> w) {
  return {static_cast<T>(w[0]), static_cast<T>(w[1]), static_cast<T>(w[2]), static_cast<T>(w[3])};
}

void check_encode_boxes_inputs(
    const at::Tensor& reference_boxes, const at::Tensor& target_boxes,
    c10::ArrayRef<double> weights);
void check_decode_boxes_inputs(
    const at::Tensor& deltas, const at::Tensor& reference_boxes, c10::ArrayRef<double> weights,
    double clamp);
}  // namespace frcnn_fast
