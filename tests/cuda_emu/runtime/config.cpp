#include "config.h"

#include <atomic>

namespace frcnn_emu {
namespace {
Config g_config;
std::atomic<uint64_t> g_cap_draws{0};
std::atomic<uint64_t> g_launch_index{0};
std::atomic<uint64_t> g_generation{0};
}  // namespace

const Config& config() {
  return g_config;
}

void set_config(const Config& c) {
  g_config = c;
  g_cap_draws = 0;
  g_launch_index = 0;
  g_generation.fetch_add(1);
}

uint64_t config_generation() {
  return g_generation.load();
}

uint64_t next_launch_index() {
  return g_launch_index.fetch_add(1);
}

int64_t next_grid_cap() {
  if (g_config.grid_cap > 0) {
    return g_config.grid_cap;
  }
  uint64_t z = g_config.seed + 0x9e3779b97f4a7c15ull * (g_cap_draws.fetch_add(1) + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  // half the time the GPU's cap, otherwise 1 to 3 blocks
  return (z & 1) ? 65535 : static_cast<int64_t>(1 + (z >> 1) % 3);
}

}  // namespace frcnn_emu
