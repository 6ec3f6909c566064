#pragma once

#include <string>

// Which instruction set the CPU kernels' hot loops run: the build's baseline (x86-64: SSE2)
// or, where the processor has it, AVX2. A kernel file compiles its loops (a `*_loops.h`) once
// per set, each copy in its own namespace, the AVX2 copy under `#pragma GCC target`
// (cpu_isa_copies.h); its entries pick a copy per call with FRCNN_FAST_WITH_CPU_ISA. ATen does the
// same with its per-capability builds of native/cpu. Only the vector width differs between the
// copies: FMA stays off (neither -mfma nor contraction), every output element gets the same
// operations in the same order, and so the same bits.
//
// The choice is made once, at the first call: the best set this processor has, or the one
// named by FRCNN_FAST_CPU_ISA (baseline, avx2).

namespace frcnn_fast {

enum class CpuIsa { kBaseline, kAvx2 };

CpuIsa cpu_isa();
const char* cpu_isa_name(CpuIsa isa);
// The sets this processor runs, best last.
std::string supported_cpu_isas();
// Switch sets by name (tests run each copy on the same inputs). An unknown name or a set this
// processor lacks is an error; returns the previous set's name.
std::string set_cpu_isa(const std::string& name);

}  // namespace frcnn_fast

// The AVX2 copies exist where GCC compiles for x86-64; elsewhere only the baseline does.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FRCNN_FAST_HAVE_AVX2_LOOPS 1
#include <immintrin.h>  // declares every set's intrinsics, whatever -m flags the build has
#define FRCNN_FAST_AVX2_BEGIN _Pragma("GCC push_options") _Pragma("GCC target(\"avx2\")")
#define FRCNN_FAST_AVX2_END _Pragma("GCC pop_options")
#else
#define FRCNN_FAST_HAVE_AVX2_LOOPS 0
#endif

// Inside the AVX2 copy the kernel file also defines FRCNN_FAST_AVX2_COPY, for the few loops
// written with intrinsics (GCC's target pragma does not define __AVX2__ in C++).

// Runs the statement(s) with `isa` naming the chosen copy's namespace (`isa::forward(...)`).
// Each kernel file defines namespaces `baseline` and `avx2` (an alias of baseline where the
// AVX2 copy is not compiled).
#define FRCNN_FAST_WITH_CPU_ISA(...)                              \
  do {                                                            \
    if (::frcnn_fast::cpu_isa() == ::frcnn_fast::CpuIsa::kAvx2) { \
      namespace isa = avx2;                                       \
      __VA_ARGS__;                                                \
    } else {                                                      \
      namespace isa = baseline;                                   \
      __VA_ARGS__;                                                \
    }                                                             \
  } while (0)
