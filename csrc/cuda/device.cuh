#pragma once
// The one header through which a CUDA kernel file reaches CUDA and c10's CUDA support.
//
// The same csrc/cuda/*.cu files build twice: by nvcc into frcnn_fast._C, and by the host
// compiler into the test-only emulated build (tests/cuda_emu), where the kernels run on CPU
// tensors with each block's threads as fibers. Everything a kernel file needs from CUDA comes
// from here, so that this file alone decides which of the two it gets:
//
//   DeviceGuard guard(t.device());          the tensor's device is current
//   cudaStream_t stream = current_stream();  launches go on the current stream
//   FRCNN_LAUNCH(kernel, grid, block, shared_bytes, stream)(args...);
//   C10_CUDA_KERNEL_LAUNCH_CHECK();
//   FRCNN_DYNAMIC_SHARED(T, name);           (in a kernel) T* name = the dynamic shared memory
//   FRCNN_STATIC_SHARED(T, name);            (in a kernel) __shared__ T name;
//   FRCNN_STATIC_SHARED(T, name, [N][M]);    (in a kernel) __shared__ T name[N][M];
//                                            (a per-block allocation in the emulated build,
//                                            where the sanitizers see it)
//   max_grid_dim()                           the cap on every grid dimension; lowered in the
//                                            emulated build so small inputs pass it
//   FRCNN_CUDA_LIBRARY_IMPL(m) { m.impl(...); }   the CUDA kernels of the op library
//   device_available_bytes(device)          memory a new allocation can still get (driver free
//                                            + what torch's caching allocator holds unused);
//                                            a fixed 16 GiB in the emulated build
//
// A kernel whose name has a comma (several template arguments) is launched through an alias:
// `constexpr auto kernel = my_kernel<A, B>;`.
#include <c10/core/Device.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>

#include "../common/macros.h"

#ifdef FRCNN_CUDA_EMULATION
#include "frcnn_cuda_emu_math.h"

namespace frcnn_fast {
struct DeviceGuard {
  explicit DeviceGuard(const c10::Device& /*device*/) {}
};
inline cudaStream_t current_stream() {
  return nullptr;
}
inline int64_t max_grid_dim() {
  return ::frcnn_emu::max_grid_dim();
}
// The emulated "device" is the host; a fixed figure (a small GPU's memory) lets tests reach
// the size checks of the kernels without allocating anything.
inline int64_t device_available_bytes(const c10::Device& /*device*/) {
  return int64_t(16) << 30;
}
}  // namespace frcnn_fast

#define FRCNN_LAUNCH(kernel, grid, block, shared_bytes, stream) \
  ::frcnn_emu::launch(kernel, grid, block, shared_bytes, stream, #kernel)
#define FRCNN_DYNAMIC_SHARED(T, name) \
  T* name = static_cast<T*>(::frcnn_emu::dynamic_shared_memory())
// A reference to the block's instance; the tag's address names the declaration (one per template
// instantiation, as a __shared__ variable is).
#define FRCNN_STATIC_SHARED(T, name, ...)                                               \
  using frcnn_static_shared_##name##_type = T __VA_ARGS__;                              \
  static char frcnn_static_shared_##name##_tag;                                         \
  frcnn_static_shared_##name##_type& name =                                             \
      *static_cast<frcnn_static_shared_##name##_type*>(::frcnn_emu::static_shared(      \
          &frcnn_static_shared_##name##_tag, sizeof(frcnn_static_shared_##name##_type), \
          alignof(frcnn_static_shared_##name##_type)))
// Launches run synchronously and throw on misuse; there is nothing left to check.
#define C10_CUDA_KERNEL_LAUNCH_CHECK() ((void)0)
// The emulated kernels serve CPU tensors, in a library of their own (frcnn_fast_cuda_emu).
#define FRCNN_CUDA_LIBRARY_IMPL(m) TORCH_LIBRARY_IMPL(FRCNN_FAST_LIBRARY, CPU, m)

#else
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

namespace frcnn_fast {
using DeviceGuard = c10::cuda::CUDAGuard;
inline cudaStream_t current_stream() {
  return c10::cuda::getCurrentCUDAStream();
}
// 65,535 is legal for every grid dimension (x allows more, y and z do not).
inline int64_t max_grid_dim() {
  return 65535;
}
// Free memory as the driver reports it plus the blocks torch's caching allocator has reserved
// but not handed out (a new tensor can use those without a cudaMalloc).
inline int64_t device_available_bytes(const c10::Device& device) {
  size_t free_bytes = 0, total_bytes = 0;
  C10_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
  const auto aggregate = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
  const int64_t cached =
      stats.reserved_bytes[aggregate].current - stats.allocated_bytes[aggregate].current;
  return static_cast<int64_t>(free_bytes) + std::max<int64_t>(cached, 0);
}
}  // namespace frcnn_fast

#define FRCNN_LAUNCH(kernel, grid, block, shared_bytes, stream) \
  kernel<<<grid, block, shared_bytes, stream>>>
#define FRCNN_DYNAMIC_SHARED(T, name)                                       \
  extern __shared__ __align__(16) unsigned char frcnn_dynamic_shared_raw[]; \
  T* name = reinterpret_cast<T*>(frcnn_dynamic_shared_raw)
#define FRCNN_STATIC_SHARED(T, name, ...) __shared__ T name __VA_ARGS__
#define FRCNN_CUDA_LIBRARY_IMPL(m) TORCH_LIBRARY_IMPL(FRCNN_FAST_LIBRARY, CUDA, m)
#endif
