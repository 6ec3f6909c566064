#pragma once

// Functions in common/ are compiled twice: by g++ for the CPU kernels and by nvcc for the
// CUDA kernels. One definition for both is what keeps the two backends from drifting apart.
#if defined(__CUDACC__) || defined(__HIPCC__)
#define FRCNN_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define FRCNN_HOST_DEVICE inline
#endif
