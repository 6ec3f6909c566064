// Kernels that test the emulator's block barriers and shared memory (tests/cuda_emu/test_*.py).
// Written to the rules of csrc/cuda: CUDA through device.cuh, launches through FRCNN_LAUNCH.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "common/macros.h"
#include "cuda/device.cuh"

namespace frcnn_fast {
namespace {

// out[t] = x[n - 1 - t] through dynamic shared memory. Without the barrier a thread may read
// its mirror's slot before it is written: shared memory starts as 0xff bytes (NaN).
__global__ void reverse_kernel(const float* x, int n, bool barrier, float* out) {
  FRCNN_DYNAMIC_SHARED(float, s);
  const int t = static_cast<int>(threadIdx.x);
  s[t] = x[t];
  if (barrier) {
    __syncthreads();
  }
  out[t] = s[n - 1 - t];
}

// Sum of 256 values by a tree in static shared memory, one barrier per level.
__global__ void tree_sum_kernel(const float* x, float* out) {
  FRCNN_STATIC_SHARED(float, s, [256]);
  const int t = static_cast<int>(threadIdx.x);
  s[t] = x[blockIdx.x * 256 + t];
  __syncthreads();
  for (int stride = 128; stride > 0; stride /= 2) {
    if (t < stride) {
      s[t] += s[t + stride];
    }
    __syncthreads();
  }
  if (t == 0) {
    out[blockIdx.x] = s[0];
  }
}

// out[0..2][t] = __syncthreads_count / _and / _or of pred, out[3][t] = 1 after a plain barrier.
__global__ void votes_kernel(const int* pred, int n, int* out) {
  const int t = static_cast<int>(threadIdx.x);
  const int p = pred[t];
  out[t] = __syncthreads_count(p);
  out[n + t] = __syncthreads_and(p);
  out[2 * n + t] = __syncthreads_or(p);
  __syncthreads();
  out[3 * n + t] = 1;
}

// Each thread of a (possibly 3-D) grid of (possibly 3-D) blocks writes its linear global index
// once; the test checks the coordinates the emulator hands out.
__global__ void coords_kernel(int64_t* out) {
  const int64_t block =
      blockIdx.x + int64_t(gridDim.x) * (blockIdx.y + int64_t(gridDim.y) * blockIdx.z);
  const int64_t threads = int64_t(blockDim.x) * blockDim.y * blockDim.z;
  const int64_t thread =
      threadIdx.x + int64_t(blockDim.x) * (threadIdx.y + int64_t(blockDim.y) * threadIdx.z);
  out[block * threads + thread] += 1 + block * threads + thread;
}

// Misuse cases, each reported as an error rather than a hang.
__global__ void misuse_kernel(int kind) {
  const int t = static_cast<int>(threadIdx.x);
  switch (kind) {
    case 0:  // half the block leaves before a barrier the other half waits in
      if (t % 2 == 1) {
        return;
      }
      __syncthreads();
      break;
    case 1:  // the two halves wait in different __syncthreads calls
      if (t % 2 == 1) {
        __syncthreads();
      } else {
        __syncthreads();
      }
      break;
    case 2:  // lane 0 waits for lane 1 in a warp sync, lane 1 waits for everyone in a barrier
      if (t == 0) {
        __syncwarp(0x3u);
      } else {
        __syncthreads();
      }
      break;
    default:
      break;
  }
}

at::Tensor reverse(const at::Tensor& x, bool barrier) {
  TORCH_CHECK(
      x.dim() == 1 && x.scalar_type() == at::kFloat && x.size(0) >= 1 && x.size(0) <= 1024,
      "x must be float32 [n], 1 <= n <= 1024");
  const at::Tensor in = x.contiguous();
  at::Tensor out = at::empty_like(in);
  const int n = static_cast<int>(in.size(0));
  FRCNN_LAUNCH(reverse_kernel, 1, n, n * sizeof(float), current_stream())(
      in.const_data_ptr<float>(), n, barrier, out.mutable_data_ptr<float>());
  return out;
}

at::Tensor tree_sum(const at::Tensor& x) {
  TORCH_CHECK(
      x.dim() == 2 && x.size(1) == 256 && x.scalar_type() == at::kFloat,
      "x must be float32 [blocks, 256]");
  const at::Tensor in = x.contiguous();
  at::Tensor out = at::empty({in.size(0)}, in.options());
  FRCNN_LAUNCH(tree_sum_kernel, static_cast<unsigned>(in.size(0)), 256, 0, current_stream())(
      in.const_data_ptr<float>(), out.mutable_data_ptr<float>());
  return out;
}

at::Tensor votes(const at::Tensor& pred) {
  TORCH_CHECK(pred.dim() == 1 && pred.scalar_type() == at::kInt, "pred must be int32 [n]");
  const at::Tensor p = pred.contiguous();
  const int n = static_cast<int>(p.size(0));
  at::Tensor out = at::zeros({4, n}, p.options());
  FRCNN_LAUNCH(votes_kernel, 1, n, 0, current_stream())(
      p.const_data_ptr<int>(), n, out.mutable_data_ptr<int>());
  return out;
}

at::Tensor coords(at::IntArrayRef grid, at::IntArrayRef block, int64_t shared_bytes) {
  TORCH_CHECK(grid.size() == 3 && block.size() == 3, "grid and block must have 3 entries");
  const int64_t total = grid[0] * grid[1] * grid[2] * block[0] * block[1] * block[2];
  at::Tensor out = at::zeros({total > 0 && total < (int64_t(1) << 24) ? total : 1}, at::kLong);
  FRCNN_LAUNCH(
      coords_kernel,
      dim3(
          static_cast<unsigned>(grid[0]), static_cast<unsigned>(grid[1]),
          static_cast<unsigned>(grid[2])),
      dim3(
          static_cast<unsigned>(block[0]), static_cast<unsigned>(block[1]),
          static_cast<unsigned>(block[2])),
      static_cast<size_t>(shared_bytes), current_stream())(out.mutable_data_ptr<int64_t>());
  return out;
}

void misuse(int64_t kind, int64_t threads) {
  FRCNN_LAUNCH(misuse_kernel, 1, static_cast<unsigned>(threads), 0, current_stream())(
      static_cast<int>(kind));
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(FRCNN_FAST_LIBRARY, m) {
  m.def("selftest_reverse(Tensor x, bool barrier) -> Tensor");
  m.def("selftest_tree_sum(Tensor x) -> Tensor");
  m.def("selftest_votes(Tensor pred) -> Tensor");
  m.def("selftest_coords(int[] grid, int[] block, int shared_bytes) -> Tensor");
  m.def("selftest_misuse(int kind, int threads) -> ()");
}

FRCNN_CUDA_LIBRARY_IMPL(m) {
  m.impl("selftest_reverse", &reverse);
  m.impl("selftest_tree_sum", &tree_sum);
  m.impl("selftest_votes", &votes);
}

// No tensor argument to dispatch on: registered for every key.
TORCH_LIBRARY_IMPL(FRCNN_FAST_LIBRARY, CompositeExplicitAutograd, m) {
  m.impl("selftest_coords", &coords);
  m.impl("selftest_misuse", &misuse);
}

}  // namespace frcnn_fast
