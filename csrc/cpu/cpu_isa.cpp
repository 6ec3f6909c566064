#include "cpu_isa.h"

#include <c10/util/Exception.h>

#include <atomic>
#include <cstdlib>

namespace frcnn_fast {
namespace {

bool processor_has(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kBaseline:
      return true;
    case CpuIsa::kAvx2:
#if FRCNN_FAST_HAVE_AVX2_LOOPS
      return __builtin_cpu_supports("avx2");
#else
      return false;
#endif
  }
  return false;
}

bool parse(const std::string& name, CpuIsa& isa) {
  for (CpuIsa candidate : {CpuIsa::kBaseline, CpuIsa::kAvx2}) {
    if (name == cpu_isa_name(candidate)) {
      isa = candidate;
      return true;
    }
  }
  return false;
}

CpuIsa checked(const std::string& name, const char* source) {
  CpuIsa isa = CpuIsa::kBaseline;
  TORCH_CHECK(parse(name, isa), source, " must be one of baseline, avx2, got '", name, "'");
  TORCH_CHECK(
      processor_has(isa), source, " asks for ", name, ", which this ",
      FRCNN_FAST_HAVE_AVX2_LOOPS ? "processor lacks" : "build has no loops for",
      " (supported: ", supported_cpu_isas(), ")");
  return isa;
}

CpuIsa initial() {
  const char* env = std::getenv("FRCNN_FAST_CPU_ISA");
  if (env != nullptr && *env != '\0') return checked(env, "FRCNN_FAST_CPU_ISA");
  return processor_has(CpuIsa::kAvx2) ? CpuIsa::kAvx2 : CpuIsa::kBaseline;
}

// -1 until the first call decides.
std::atomic<int> chosen{-1};

}  // namespace

CpuIsa cpu_isa() {
  int v = chosen.load(std::memory_order_relaxed);
  if (v < 0) {
    // Racing first calls compute the same answer (or throw alike); any store wins.
    v = static_cast<int>(initial());
    int expected = -1;
    chosen.compare_exchange_strong(expected, v, std::memory_order_relaxed);
    v = chosen.load(std::memory_order_relaxed);
  }
  return static_cast<CpuIsa>(v);
}

const char* cpu_isa_name(CpuIsa isa) {
  return isa == CpuIsa::kAvx2 ? "avx2" : "baseline";
}

std::string supported_cpu_isas() {
  std::string names = cpu_isa_name(CpuIsa::kBaseline);
  if (processor_has(CpuIsa::kAvx2)) names += std::string(", ") + cpu_isa_name(CpuIsa::kAvx2);
  return names;
}

std::string set_cpu_isa(const std::string& name) {
  const CpuIsa isa = checked(name, "cpu_isa");
  const std::string previous = cpu_isa_name(cpu_isa());
  chosen.store(static_cast<int>(isa), std::memory_order_relaxed);
  return previous;
}

}  // namespace frcnn_fast
