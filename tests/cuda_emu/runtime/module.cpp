// The Python module of the emulated build: settings and counters of the emulator. The emulated
// kernels themselves are torch ops, torch.ops.frcnn_fast_cuda_emu.*, registered for CPU tensors.
#include <torch/extension.h>

#include <optional>
#include <string>

#include "config.h"

namespace {

const char* schedule_name(frcnn_emu::Schedule s) {
  switch (s) {
    case frcnn_emu::Schedule::kUniform:
      return "uniform";
    case frcnn_emu::Schedule::kPct:
      return "pct";
    default:
      return "mixed";
  }
}

void configure(
    std::optional<uint64_t> seed, std::optional<int64_t> workers,
    std::optional<int64_t> max_grid_dim, std::optional<std::string> schedule,
    std::optional<int64_t> pct_depth) {
  frcnn_emu::Config c = frcnn_emu::config();
  if (seed) {
    c.seed = *seed;
  }
  if (workers) {
    TORCH_CHECK(*workers >= 1, "workers must be >= 1, got ", *workers);
    c.workers = *workers;
  }
  if (max_grid_dim) {
    TORCH_CHECK(
        *max_grid_dim >= 0 && *max_grid_dim <= 65535,
        "max_grid_dim must be in [1, 65535], or 0 for a random cap per launch, got ",
        *max_grid_dim);
    c.grid_cap = *max_grid_dim;
  }
  if (schedule) {
    if (*schedule == "uniform") {
      c.schedule = frcnn_emu::Schedule::kUniform;
    } else if (*schedule == "pct") {
      c.schedule = frcnn_emu::Schedule::kPct;
    } else if (*schedule == "mixed") {
      c.schedule = frcnn_emu::Schedule::kMixed;
    } else {
      TORCH_CHECK(false, "schedule must be 'uniform', 'pct' or 'mixed', got '", *schedule, "'");
    }
  }
  if (pct_depth) {
    TORCH_CHECK(
        *pct_depth >= 1 && *pct_depth <= 16, "pct_depth must be in [1, 16], got ", *pct_depth);
    c.pct_depth = *pct_depth;
  }
  frcnn_emu::set_config(c);
}

pybind11::dict get_config() {
  const frcnn_emu::Config& c = frcnn_emu::config();
  pybind11::dict d;
  d["seed"] = c.seed;
  d["workers"] = c.workers;
  d["max_grid_dim"] = c.grid_cap;
  d["schedule"] = schedule_name(c.schedule);
  d["pct_depth"] = c.pct_depth;
  d["stack_bytes"] = c.stack_bytes;
  return d;
}

pybind11::dict get_stats() {
  const frcnn_emu::Stats s = frcnn_emu::stats();
  pybind11::dict d;
  d["launches"] = s.launches;
  d["blocks"] = s.blocks;
  d["threads"] = s.threads;
  d["switches"] = s.switches;
  d["pct_blocks"] = s.pct_blocks;
  return d;
}

pybind11::list sanitizers() {
  pybind11::list l;
#if defined(__SANITIZE_ADDRESS__)
  l.append("address");
#endif
#if defined(__SANITIZE_THREAD__)
  l.append("thread");
#endif
  return l;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "CUDA kernels of frcnn_fast emulated on the CPU (test-only build)";
  m.def(
      "configure", &configure, pybind11::arg("seed") = pybind11::none(),
      pybind11::arg("workers") = pybind11::none(), pybind11::arg("max_grid_dim") = pybind11::none(),
      pybind11::arg("schedule") = pybind11::none(), pybind11::arg("pct_depth") = pybind11::none(),
      "Change the emulator's settings; None keeps a setting.");
  m.def("config", &get_config, "The emulator's settings.");
  m.def("stats", &get_stats, "Launches, blocks, threads and context switches so far.");
  m.def("sanitizers", &sanitizers, "The sanitizers this build is instrumented with.");
}
