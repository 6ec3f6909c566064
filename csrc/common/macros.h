#pragma once

// Functions in common/ are compiled twice: by g++ for the CPU kernels and by nvcc for the
// CUDA kernels. One definition for both is what keeps the two backends from drifting apart.
#if defined(__CUDACC__) || defined(__HIPCC__)
#define FRCNN_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define FRCNN_HOST_DEVICE inline
#endif

// float and double overloads of a <cmath> function: the float one calls the float variant
// (logf, floorf, ...), so float kernels stay in float arithmetic on the device too.
#define FRCNN_MATH_OVERLOADS(name, fn)      \
  FRCNN_HOST_DEVICE float name(float v) {   \
    return fn##f(v);                        \
  }                                         \
  FRCNN_HOST_DEVICE double name(double v) { \
    return fn(v);                           \
  }

// The op library's name: frcnn_fast, or frcnn_fast_cuda_emu in the emulated test build of the
// CUDA kernels (tests/cuda_emu), whose schemas live next to the real ones under their own name.
#ifndef FRCNN_FAST_LIBRARY
#define FRCNN_FAST_LIBRARY frcnn_fast
#endif

// Every kernel takes float32/64 and both half types, computing in at::opmath_type<scalar_t>.
#define FRCNN_DISPATCH_FLOATING_TYPES(type, name, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, type, name, __VA_ARGS__)
