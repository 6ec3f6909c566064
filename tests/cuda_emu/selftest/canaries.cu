// Deliberately broken kernels: `make sanitize` runs each in a child process and requires the
// sanitizer to report it (tests/cuda_emu/canaries.py). They prove that the sanitizer builds
// see what they are there to see; no other test calls them.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "common/macros.h"
#include "cuda/device.cuh"

namespace frcnn_fast {
namespace {

// Writes one element past the dynamic shared memory of the launch.
__global__ void shared_overrun_kernel(int n, float* out) {
  FRCNN_DYNAMIC_SHARED(float, s);
  const int t = static_cast<int>(threadIdx.x);
  s[t + 1] = 1.0f;  // thread n-1 writes s[n]
  __syncthreads();
  out[t] = s[t];
  (void)n;
}

// Reads one element past the end of its input tensor.
__global__ void global_overrun_kernel(const float* x, int n, float* out) {
  const int t = static_cast<int>(threadIdx.x);
  out[t] = x[t + 1];  // thread n-1 reads x[n]
  (void)n;
}

// Writes one element past a static shared array (through a pointer: UBSan's bounds check
// would otherwise report it first, as an index out of bounds of the array type).
__global__ void static_shared_overrun_kernel(float* out) {
  FRCNN_STATIC_SHARED(float, s, [64]);
  float* p = s;
  const int t = static_cast<int>(threadIdx.x);
  p[t + 1] = 1.0f;  // thread 63 writes s[64]
  __syncthreads();
  out[t] = s[t];
}

// Every thread increments one counter in (dynamic) shared memory with a plain read-modify-write
// and no barrier between them: a data race between the threads of a block.
__global__ void shared_race_kernel(int* out) {
  FRCNN_DYNAMIC_SHARED(int, counter);
  if (threadIdx.x == 0) {
    counter[0] = 0;
  }
  __syncthreads();
  counter[0] += 1;
  __syncthreads();
  if (threadIdx.x == 0) {
    out[0] = counter[0];
  }
}

// The same race on a static __shared__ variable; and a write-after-read hazard like a missing
// barrier at the end of a loop: thread 0 rewrites `flag` for the next round while others may
// still read this round's value.
__global__ void static_shared_race_kernel(int rounds, int* out) {
  FRCNN_STATIC_SHARED(int, counter);
  FRCNN_STATIC_SHARED(int, flag);
  const int t = static_cast<int>(threadIdx.x);
  if (t == 0) {
    counter = 0;
  }
  __syncthreads();
  if (rounds == 0) {
    counter += 1;
  }
  for (int r = 0; r < rounds; ++r) {
    if (t == 0) {
      flag = r;
    }
    __syncthreads();
    out[t] += flag;
  }
  __syncthreads();
  if (t == 0) {
    out[0] += counter;
  }
}

// Two threads of a block write the same global element.
__global__ void global_race_kernel(int* out) {
  out[0] = static_cast<int>(threadIdx.x);
}

// The first thread of every block writes the same global element: a race between blocks (the
// emulator's two workers run blocks at the same time).
__global__ void block_race_kernel(int* out) {
  if (threadIdx.x == 0) {
    out[0] = static_cast<int>(blockIdx.x);
  }
}

// Not broken: every thread writes its own element. Run before each canary (canaries.py) so
// that the canary's threads run on reused emulator threads, as all but the first launch's do.
__global__ void warm_up_kernel(int* out) {
  out[blockIdx.x * blockDim.x + threadIdx.x] = 1;
}

void shared_overrun(int64_t n) {
  at::Tensor out = at::empty({n}, at::kFloat);
  FRCNN_LAUNCH(
      shared_overrun_kernel, 1, static_cast<unsigned>(n), n * sizeof(float), current_stream())(
      static_cast<int>(n), out.mutable_data_ptr<float>());
}

void global_overrun(int64_t n) {
  at::Tensor x = at::zeros({n}, at::kFloat);
  at::Tensor out = at::empty({n}, at::kFloat);
  FRCNN_LAUNCH(global_overrun_kernel, 1, static_cast<unsigned>(n), 0, current_stream())(
      x.const_data_ptr<float>(), static_cast<int>(n), out.mutable_data_ptr<float>());
}

void static_shared_overrun(int64_t n) {
  at::Tensor out = at::empty({64}, at::kFloat);
  FRCNN_LAUNCH(
      static_shared_overrun_kernel, 1, 64, 0, current_stream())(out.mutable_data_ptr<float>());
  (void)n;
}

void static_shared_race(int64_t rounds) {
  at::Tensor out = at::zeros({64}, at::kInt);
  FRCNN_LAUNCH(static_shared_race_kernel, 1, 64, 0, current_stream())(
      static_cast<int>(rounds), out.mutable_data_ptr<int>());
}

void shared_race(int64_t threads) {
  at::Tensor out = at::zeros({1}, at::kInt);
  FRCNN_LAUNCH(
      shared_race_kernel, 1, static_cast<unsigned>(threads), sizeof(int),
      current_stream())(out.mutable_data_ptr<int>());
}

void global_race(int64_t threads) {
  at::Tensor out = at::zeros({1}, at::kInt);
  FRCNN_LAUNCH(global_race_kernel, 1, static_cast<unsigned>(threads), 0, current_stream())(
      out.mutable_data_ptr<int>());
}

void block_race(int64_t blocks) {
  at::Tensor out = at::zeros({1}, at::kInt);
  FRCNN_LAUNCH(block_race_kernel, static_cast<unsigned>(blocks), 32, 0, current_stream())(
      out.mutable_data_ptr<int>());
}

void warm_up(int64_t blocks) {
  at::Tensor out = at::zeros({blocks * 256}, at::kInt);
  FRCNN_LAUNCH(warm_up_kernel, static_cast<unsigned>(blocks), 256, 0, current_stream())(
      out.mutable_data_ptr<int>());
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(FRCNN_FAST_LIBRARY, m) {
  m.def("canary_shared_overrun(int n) -> ()");
  m.def("canary_global_overrun(int n) -> ()");
  m.def("canary_shared_race(int threads) -> ()");
  m.def("canary_static_shared_overrun(int n) -> ()");
  m.def("canary_static_shared_race(int rounds) -> ()");
  m.def("canary_global_race(int threads) -> ()");
  m.def("canary_block_race(int blocks) -> ()");
  m.def("canary_warm_up(int blocks) -> ()");
}

TORCH_LIBRARY_IMPL(FRCNN_FAST_LIBRARY, CompositeExplicitAutograd, m) {
  m.impl("canary_shared_overrun", &shared_overrun);
  m.impl("canary_global_overrun", &global_overrun);
  m.impl("canary_shared_race", &shared_race);
  m.impl("canary_static_shared_overrun", &static_shared_overrun);
  m.impl("canary_static_shared_race", &static_shared_race);
  m.impl("canary_global_race", &global_race);
  m.impl("canary_block_race", &block_race);
  m.impl("canary_warm_up", &warm_up);
}

}  // namespace frcnn_fast
