#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#ifdef __linux__
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace frcnn_fast {

// A fresh multi-megabyte output is page-fault bound: faulting in 64 MB of new 4 KiB pages
// costs more than computing a 4000 x 4000 IoU into them. Asking for transparent huge pages
// on the still untouched buffer cuts the faults ~500x where the system allows it (THP
// "madvise" or "always"); elsewhere the advice is ignored and nothing changes. Host memory
// only: a device tensor is returned as at::empty made it.
inline at::Tensor empty_large_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor out = at::empty(sizes, options);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr size_t kMinBytes = size_t(8) << 20;
  const size_t bytes = out.nbytes();
  if (out.is_cpu() && bytes >= kMinBytes) {
    const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const auto begin = reinterpret_cast<uintptr_t>(out.data_ptr());
    const uintptr_t first = (begin + page - 1) & ~(page - 1);
    const uintptr_t last = (begin + bytes) & ~(page - 1);
    // Advisory: a refusal (EINVAL on kernels without THP) leaves ordinary pages.
    (void)madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
  }
#endif
  return out;
}

}  // namespace frcnn_fast
