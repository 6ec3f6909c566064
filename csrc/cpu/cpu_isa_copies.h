// The per-instruction-set copies of one loops header (cpu_isa.h): a kernel file defines
// FRCNN_FAST_LOOPS as that header's name, then includes this inside its own namespace, after
// all its other includes. No include guard: one inclusion per kernel file, by design.

namespace baseline {
#include FRCNN_FAST_LOOPS
}  // namespace baseline

#if FRCNN_FAST_HAVE_AVX2_LOOPS
FRCNN_FAST_AVX2_BEGIN
#define FRCNN_FAST_AVX2_COPY 1
namespace avx2 {
#include FRCNN_FAST_LOOPS
}  // namespace avx2
#undef FRCNN_FAST_AVX2_COPY
FRCNN_FAST_AVX2_END
#else
namespace avx2 = baseline;
#endif

#undef FRCNN_FAST_LOOPS
