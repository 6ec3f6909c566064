// Kernels that test the emulator's schedules (tests/cuda_emu/test_schedules.py).
#include <ATen/ATen.h>
#include <torch/library.h>

#include "common/macros.h"
#include "cuda/device.cuh"

namespace frcnn_fast {
namespace {

// A race of depth 2 that needs a long delay (blocks of 96 threads, three warps). After a barrier,
// warp 0 runs `rounds` __syncwarp()s and then its lane 0 sets `flag` to 1; lane 0 of warp 1 reads
// `flag` once; lane 0 of warp 2 sets it to 2. The read sees 1 only if it comes after warp 0's
// write (the reader waits through 32 x rounds steps of warp 0) and before warp 2's (which waits
// longer still): two ordering constraints, each a long starvation. out[block] = what was read.
__global__ void starved_reader_kernel(int rounds, int* out) {
  FRCNN_STATIC_SHARED(int, flag);
  const int t = static_cast<int>(threadIdx.x);
  if (t == 0) {
    flag = 0;
  }
  __syncthreads();
  int seen = -1;
  if (t < 32) {
    for (int r = 0; r < rounds; ++r) {
      __syncwarp(0xffffffffu);
    }
    if (t == 0) {
      flag = 1;
    }
  } else if (t == 32) {
    seen = flag;
  } else if (t == 64) {
    flag = 2;
  }
  __syncthreads();
  if (t == 32) {
    out[blockIdx.x] = seen;
  }
}

at::Tensor starved_reader(int64_t blocks, int64_t rounds) {
  at::Tensor out = at::full({blocks}, -1, at::kInt);
  FRCNN_LAUNCH(starved_reader_kernel, static_cast<unsigned>(blocks), 96, 0, current_stream())(
      static_cast<int>(rounds), out.mutable_data_ptr<int>());
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(FRCNN_FAST_LIBRARY, m) {
  m.def("selftest_starved_reader(int blocks, int rounds) -> Tensor");
}

TORCH_LIBRARY_IMPL(FRCNN_FAST_LIBRARY, CompositeExplicitAutograd, m) {
  m.impl("selftest_starved_reader", &starved_reader);
}

}  // namespace frcnn_fast
