#pragma once

// Functions in common/ are compiled twice: by g++ for the CPU kernels and by nvcc for the
// CUDA kernels. One definition for both is what keeps the two backends from drifting apart.
#if defined(__CUDACC__) || defined(__HIPCC__)
#define FRCNN_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define FRCNN_HOST_DEVICE inline
#endif

// The op library's name: frcnn_fast, or frcnn_fast_cuda_emu in the emulated test build of the
// CUDA kernels (tests/cuda_emu), whose schemas live next to the real ones under their own name.
#ifndef FRCNN_FAST_LIBRARY
#define FRCNN_FAST_LIBRARY frcnn_fast
#endif
