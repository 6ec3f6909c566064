#pragma once
// The CUDA emulator's view from a kernel file. Force-included (g++ -include) into every
// csrc/cuda/*.cu when the test build compiles them as C++, so that the CUDA keywords, types and
// intrinsics the kernels use exist on the host: each block's threads become fibers of one OS
// thread (tests/cuda_emu/runtime/), barriers and warp collectives are real meeting points, and a
// seeded scheduler picks which runnable thread goes next.
//
// Only what our kernels may use is here; anything else fails to compile, which is the point.
// Kernels reach these names through csrc/cuda/device.cuh, never directly.

#define FRCNN_CUDA_EMULATION 1

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

// ---------------------------------------------------------------------------- keywords
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// Static shared memory is declared with FRCNN_STATIC_SHARED (csrc/cuda/device.cuh), which the
// emulation turns into a per-block allocation: the sanitizers see ordinary heap memory (GCC's
// TSan does not instrument thread-local storage, and ASan puts no red zones around it).
#define __shared__ \
  static_assert(false, "static shared memory: FRCNN_STATIC_SHARED(T, name[, [N]...])");

struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1)
      : x(x_), y(y_), z(z_) {}
};

struct frcnn_emu_stream;
using cudaStream_t = frcnn_emu_stream*;

constexpr int warpSize = 32;

// Set by the scheduler before it switches to a fiber (threadIdx) or starts a block (the rest).
extern thread_local dim3 threadIdx;
extern thread_local dim3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;

namespace frcnn_emu {

// ------------------------------------------------------------------- runtime entry points
// Implemented in runtime/*.cpp, out of line: under ThreadSanitizer the runtime's own
// bookkeeping is not instrumented, only the kernels' memory accesses are.
struct Site {
  const char* file;
  int line;
};

enum class BarrierKind { kSync, kCount, kAnd, kOr };
int block_barrier(BarrierKind kind, int predicate, Site site);

enum class WarpOp { kSyncwarp, kBallot, kAny, kAll, kShfl, kShflUp, kShflDown, kShflXor };
// One call for every warp collective: `bits` is the caller's value (predicate or shuffled
// bytes), `arg` the source lane / delta / lane mask, `width` the shuffle segment.
uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t bits, int arg, int width, Site site);
unsigned active_mask();

// A scheduling point: the calling thread stays runnable, another may run first. Atomics and
// fences call it so that their interleavings vary with the seed as well.
void yield_point();
void fence();

void* dynamic_shared_memory();
// A static __shared__ variable of the calling thread's block, identified by `tag` (a static
// object of the declaring function): allocated by the first thread that reaches it.
void* static_shared(const void* tag, size_t bytes, size_t align);
int64_t max_grid_dim();

struct LaunchConfig {
  dim3 grid;
  dim3 block;
  size_t shared_bytes;
  const char* kernel_name;
};

// Runs body() once per thread of the grid; throws std::runtime_error for an illegal launch
// configuration or a misuse detected while the kernel ran.
void run_grid(const LaunchConfig& config, void (*body)(void*), void* context);

// Launch helper: the arguments are converted to the kernel's parameter types at the call site
// (as a <<<...>>> launch does) and every emulated thread gets its own copy.
template <typename... P>
class Launcher {
 public:
  Launcher(void (*kernel)(P...), LaunchConfig config) : kernel_(kernel), config_(config) {}

  void operator()(P... args) const {
    Call call{kernel_, std::tuple<P...>(args...)};
    run_grid(config_, &Call::invoke, &call);
  }

 private:
  struct Call {
    void (*kernel)(P...);
    std::tuple<P...> args;
    static void invoke(void* self) {
      const Call& c = *static_cast<const Call*>(self);
      std::tuple<P...> copy = c.args;  // by value, per thread, like kernel parameters
      std::apply(c.kernel, std::move(copy));
    }
  };
  void (*kernel_)(P...);
  LaunchConfig config_;
};

template <typename... P>
Launcher<P...> launch(
    void (*kernel)(P...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t /*stream*/,
    const char* name) {
  return Launcher<P...>(kernel, LaunchConfig{grid, block, shared_bytes, name});
}

template <typename T>
uint64_t to_bits(T v) {
  static_assert(
      sizeof(T) <= 8 && std::is_trivially_copyable<T>::value,
      "shuffle of a value wider than 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  return bits;
}

template <typename T>
T from_bits(uint64_t bits) {
  T v;
  std::memcpy(&v, &bits, sizeof(T));
  return v;
}

template <typename T>
struct identity {
  using type = T;
};

// Atomics are real (blocks of one launch run on several OS threads) and relaxed, like CUDA's.
template <typename T>
T atomic_rmw_cas(T* address, T (*update)(T, T), T value) {
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  static_assert(sizeof(T) == sizeof(Bits), "atomic on a type of unsupported width");
  yield_point();
  Bits* p = reinterpret_cast<Bits*>(address);
  Bits expected = __atomic_load_n(p, __ATOMIC_RELAXED);
  for (;;) {
    T old;
    std::memcpy(&old, &expected, sizeof(T));
    const T desired_value = update(old, value);
    Bits desired;
    std::memcpy(&desired, &desired_value, sizeof(T));
    if (__atomic_compare_exchange_n(
            p, &expected, desired, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
      return old;
    }
  }
}

}  // namespace frcnn_emu

// ------------------------------------------------------------------------- intrinsics
#define FRCNN_EMU_SITE (::frcnn_emu::Site{__FILE__, __LINE__})

#define __syncthreads() \
  ((void)::frcnn_emu::block_barrier(::frcnn_emu::BarrierKind::kSync, 0, FRCNN_EMU_SITE))
#define __syncthreads_count(p) \
  ::frcnn_emu::block_barrier(::frcnn_emu::BarrierKind::kCount, (p) ? 1 : 0, FRCNN_EMU_SITE)
#define __syncthreads_and(p) \
  ::frcnn_emu::block_barrier(::frcnn_emu::BarrierKind::kAnd, (p) ? 1 : 0, FRCNN_EMU_SITE)
#define __syncthreads_or(p) \
  ::frcnn_emu::block_barrier(::frcnn_emu::BarrierKind::kOr, (p) ? 1 : 0, FRCNN_EMU_SITE)

#define __syncwarp(...) ::frcnn_emu_syncwarp(FRCNN_EMU_SITE, ##__VA_ARGS__)
#define __ballot_sync(mask, p)                        \
  static_cast<unsigned>(::frcnn_emu::warp_collective( \
      ::frcnn_emu::WarpOp::kBallot, (mask), (p) ? 1 : 0, 0, 32, FRCNN_EMU_SITE))
#define __any_sync(mask, p)                      \
  static_cast<int>(::frcnn_emu::warp_collective( \
      ::frcnn_emu::WarpOp::kAny, (mask), (p) ? 1 : 0, 0, 32, FRCNN_EMU_SITE))
#define __all_sync(mask, p)                      \
  static_cast<int>(::frcnn_emu::warp_collective( \
      ::frcnn_emu::WarpOp::kAll, (mask), (p) ? 1 : 0, 0, 32, FRCNN_EMU_SITE))
#define __activemask() ::frcnn_emu::active_mask()
#define __shfl_sync(mask, v, lane, ...) \
  ::frcnn_emu_shfl(::frcnn_emu::WarpOp::kShfl, (mask), (v), (lane), FRCNN_EMU_SITE, ##__VA_ARGS__)
#define __shfl_up_sync(mask, v, delta, ...) \
  ::frcnn_emu_shfl(                         \
      ::frcnn_emu::WarpOp::kShflUp, (mask), (v), (delta), FRCNN_EMU_SITE, ##__VA_ARGS__)
#define __shfl_down_sync(mask, v, delta, ...) \
  ::frcnn_emu_shfl(                           \
      ::frcnn_emu::WarpOp::kShflDown, (mask), (v), (delta), FRCNN_EMU_SITE, ##__VA_ARGS__)
#define __shfl_xor_sync(mask, v, lane_mask, ...) \
  ::frcnn_emu_shfl(                              \
      ::frcnn_emu::WarpOp::kShflXor, (mask), (v), (lane_mask), FRCNN_EMU_SITE, ##__VA_ARGS__)

inline void frcnn_emu_syncwarp(frcnn_emu::Site site, unsigned mask = 0xffffffffu) {
  frcnn_emu::warp_collective(frcnn_emu::WarpOp::kSyncwarp, mask, 0, 0, 32, site);
}

template <typename T>
T frcnn_emu_shfl(
    frcnn_emu::WarpOp op, unsigned mask, T v, int arg, frcnn_emu::Site site, int width = 32) {
  return frcnn_emu::from_bits<T>(
      frcnn_emu::warp_collective(op, mask, frcnn_emu::to_bits(v), arg, width, site));
}

inline void __threadfence() {
  frcnn_emu::fence();
}
inline void __threadfence_block() {
  frcnn_emu::fence();
}

template <typename T>
inline T __ldg(const T* p) {
  return *p;
}

inline int __popc(unsigned int x) {
  return __builtin_popcount(x);
}
inline int __popcll(unsigned long long x) {
  return __builtin_popcountll(x);
}
inline int __ffs(int x) {
  return __builtin_ffs(x);
}
inline int __ffsll(long long x) {
  return __builtin_ffsll(x);
}
inline int __clz(int x) {
  return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x));
}
inline int __clzll(long long x) {
  return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x));
}

// ---------------------------------------------------------------------------- atomics
namespace frcnn_emu {
template <typename T>
T add_op(T a, T b) {
  return a + b;
}
template <typename T>
T min_op(T a, T b) {
  return b < a ? b : a;
}
template <typename T>
T max_op(T a, T b) {
  return a < b ? b : a;
}
template <typename T>
T or_op(T a, T b) {
  return a | b;
}
template <typename T>
T and_op(T a, T b) {
  return a & b;
}
template <typename T>
T exch_op(T /*a*/, T b) {
  return b;
}
}  // namespace frcnn_emu

template <typename T>
inline T atomicAdd(T* address, typename frcnn_emu::identity<T>::type value) {
  return frcnn_emu::atomic_rmw_cas<T>(address, &frcnn_emu::add_op<T>, value);
}
// CUDA has these for integer types only; so does the emulation, to catch a float use here.
#define FRCNN_EMU_INTEGER_ATOMIC(name, op)                                       \
  template <typename T>                                                          \
  inline T name(T* address, typename frcnn_emu::identity<T>::type value) {       \
    static_assert(std::is_integral<T>::value, #name " is integer-only in CUDA"); \
    return frcnn_emu::atomic_rmw_cas<T>(address, &frcnn_emu::op<T>, value);      \
  }
FRCNN_EMU_INTEGER_ATOMIC(atomicMin, min_op)
FRCNN_EMU_INTEGER_ATOMIC(atomicMax, max_op)
FRCNN_EMU_INTEGER_ATOMIC(atomicOr, or_op)
FRCNN_EMU_INTEGER_ATOMIC(atomicAnd, and_op)
#undef FRCNN_EMU_INTEGER_ATOMIC
template <typename T>
inline T atomicExch(T* address, typename frcnn_emu::identity<T>::type value) {
  return frcnn_emu::atomic_rmw_cas<T>(address, &frcnn_emu::exch_op<T>, value);
}
template <typename T>
inline T atomicCAS(
    T* address, typename frcnn_emu::identity<T>::type compare,
    typename frcnn_emu::identity<T>::type value) {
  static_assert(std::is_integral<T>::value, "atomicCAS is integer-only");
  frcnn_emu::yield_point();
  T expected = compare;
  __atomic_compare_exchange_n(address, &expected, value, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return expected;  // the old value whether or not the swap happened
}
