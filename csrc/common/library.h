#pragma once

#include <torch/library.h>

namespace frcnn_fast {

// Every op of the library is pt2-compliant: each has a fake kernel (frcnn_fast/_fake.py), so
// torch.compile and torch.export trace through it.
inline void define_op(torch::Library& m, const char* schema) {
  m.def(schema, {at::Tag::pt2_compliant_tag});
}

}  // namespace frcnn_fast
