// Kernels that test the emulator's warp collectives and atomics (tests/cuda_emu/test_*.py).
#include <ATen/ATen.h>
#include <torch/library.h>

#include "common/macros.h"
#include "cuda/device.cuh"

namespace frcnn_fast {
namespace {

enum Op : int {
  kSyncwarp = 0,
  kBallot = 1,
  kAny = 2,
  kAll = 3,
  kShfl = 4,
  kShflUp = 5,
  kShflDown = 6,
  kShflXor = 7,
  kActivemask = 8,
};

// One block; thread t leaves at once if live[t] == 0, otherwise calls collective op[t] with
// mask mask[t] on value[t] (the predicate is value != 0) and writes the result to out[t].
// Per-thread ops and masks let the tests build any pattern, misuse included.
__global__ void collective_kernel(
    const int* op, const int64_t* mask, const int64_t* value, const int* live, int arg, int width,
    int64_t* out) {
  const int t = static_cast<int>(threadIdx.x);
  if (!live[t]) {
    return;
  }
  const unsigned m = static_cast<unsigned>(mask[t]);
  const long long v = value[t];
  long long r = 0;
  switch (op[t]) {
    case kSyncwarp:
      __syncwarp(m);
      break;
    case kBallot:
      r = __ballot_sync(m, v != 0);
      break;
    case kAny:
      r = __any_sync(m, v != 0);
      break;
    case kAll:
      r = __all_sync(m, v != 0);
      break;
    case kShfl:
      r = __shfl_sync(m, v, arg, width);
      break;
    case kShflUp:
      r = __shfl_up_sync(m, v, static_cast<unsigned>(arg), width);
      break;
    case kShflDown:
      r = __shfl_down_sync(m, v, static_cast<unsigned>(arg), width);
      break;
    case kShflXor:
      r = __shfl_xor_sync(m, v, arg, width);
      break;
    case kActivemask:
      r = __activemask();
      break;
    default:
      break;
  }
  out[t] = r;
}

// Every thread of every block hits the same counters; ticket[g] is the order in which global
// thread g got there (a permutation, which shows the schedule).
__global__ void atomics_kernel(
    float* f32, double* f64, int* i32, unsigned* u32, unsigned long long* u64, int64_t* ticket) {
  const int t = static_cast<int>(threadIdx.x);
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + t;
  atomicAdd(f32, 1.0f);
  atomicAdd(f64, 0.5);
  atomicAdd(&i32[0], 1);
  atomicMax(&i32[1], static_cast<int>(g));
  atomicMin(&i32[2], static_cast<int>(-g));
  atomicExch(&i32[3], static_cast<int>(g));
  atomicOr(&u32[0], 1u << (g % 32));
  atomicAdd(&u64[0], 1ull << 33);
  // a CAS loop: the canonical lock-free read-modify-write (its first read is atomic too: a
  // plain read racing with other threads' atomics is a data race, and TSan says so)
  unsigned old = atomicAdd(&u32[1], 0u);
  for (;;) {
    const unsigned seen = atomicCAS(&u32[1], old, old + 3u);
    if (seen == old) {
      break;
    }
    old = seen;
  }
  ticket[g] = static_cast<int64_t>(atomicAdd(&u64[1], 1ull));
}

at::Tensor collective(
    const at::Tensor& op, const at::Tensor& mask, const at::Tensor& value, const at::Tensor& live,
    int64_t arg, int64_t width) {
  const int64_t n = op.size(0);
  TORCH_CHECK(n >= 1 && n <= 1024, "1 to 1024 threads");
  const at::Tensor o = op.to(at::kInt).contiguous();
  const at::Tensor m = mask.to(at::kLong).contiguous();
  const at::Tensor v = value.to(at::kLong).contiguous();
  const at::Tensor l = live.to(at::kInt).contiguous();
  at::Tensor out = at::full({n}, -1, at::kLong);
  FRCNN_LAUNCH(collective_kernel, 1, static_cast<unsigned>(n), 0, current_stream())(
      o.const_data_ptr<int>(), m.const_data_ptr<int64_t>(), v.const_data_ptr<int64_t>(),
      l.const_data_ptr<int>(), static_cast<int>(arg), static_cast<int>(width),
      out.mutable_data_ptr<int64_t>());
  return out;
}

std::vector<at::Tensor> atomics(int64_t blocks, int64_t threads) {
  const auto opts = at::TensorOptions().device(at::kCPU);
  at::Tensor f32 = at::zeros({1}, opts.dtype(at::kFloat));
  at::Tensor f64 = at::zeros({1}, opts.dtype(at::kDouble));
  at::Tensor i32 = at::tensor({0, -1, 1, -1}, opts.dtype(at::kInt));
  at::Tensor u32 = at::zeros({2}, opts.dtype(at::kInt));
  at::Tensor u64 = at::zeros({2}, opts.dtype(at::kLong));
  at::Tensor ticket = at::full({blocks * threads}, -1, opts.dtype(at::kLong));
  FRCNN_LAUNCH(
      atomics_kernel, static_cast<unsigned>(blocks), static_cast<unsigned>(threads), 0,
      current_stream())(
      f32.mutable_data_ptr<float>(), f64.mutable_data_ptr<double>(), i32.mutable_data_ptr<int>(),
      reinterpret_cast<unsigned*>(u32.mutable_data_ptr<int>()),
      reinterpret_cast<unsigned long long*>(u64.mutable_data_ptr<int64_t>()),
      ticket.mutable_data_ptr<int64_t>());
  return {f32, f64, i32, u32, u64, ticket};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(FRCNN_FAST_LIBRARY, m) {
  m.def(
      "selftest_collective(Tensor op, Tensor mask, Tensor value, Tensor live, int arg, int width) "
      "-> Tensor");
  m.def("selftest_atomics(int blocks, int threads) -> Tensor[]");
}

FRCNN_CUDA_LIBRARY_IMPL(m) {
  m.impl("selftest_collective", &collective);
}

TORCH_LIBRARY_IMPL(FRCNN_FAST_LIBRARY, CompositeExplicitAutograd, m) {
  m.impl("selftest_atomics", &atomics);
}

}  // namespace frcnn_fast
