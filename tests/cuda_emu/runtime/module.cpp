// The Python module of the emulated build: settings and counters of the emulator. The emulated
// kernels themselves are torch ops, torch.ops.frcnn_fast_cuda_emu.*, registered for CPU tensors.
#include <torch/extension.h>

#include <optional>

#include "config.h"

namespace {

void configure(
    std::optional<uint64_t> seed, std::optional<int64_t> workers,
    std::optional<int64_t> max_grid_dim) {
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
  frcnn_emu::set_config(c);
}

pybind11::dict get_config() {
  const frcnn_emu::Config& c = frcnn_emu::config();
  pybind11::dict d;
  d["seed"] = c.seed;
  d["workers"] = c.workers;
  d["max_grid_dim"] = c.grid_cap;
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
      "Change the emulator's settings; None keeps a setting.");
  m.def("config", &get_config, "The emulator's settings.");
  m.def("stats", &get_stats, "Launches, blocks, threads and context switches so far.");
  m.def("sanitizers", &sanitizers, "The sanitizers this build is instrumented with.");
}
