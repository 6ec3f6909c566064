#pragma once
// Emulator settings (set from Python between launches) and counters.
#include <cstddef>
#include <cstdint>

namespace frcnn_emu {

enum class Schedule {
  kUniform,  // a uniformly random runnable thread at every scheduling point
  kPct,      // probabilistic concurrency testing: the highest-priority runnable thread
  kMixed,    // each block draws one of the two from its seed
};

struct Config {
  uint64_t seed = 0;
  // OS threads that run blocks; each runs one block at a time.
  int64_t workers = 2;
  // What max_grid_dim() tells the launch code: 65535 as on a GPU, a small number so that small
  // inputs exercise grid-stride loops and multi-pass paths, or 0 for a seeded random choice per
  // call between the two.
  int64_t grid_cap = 65535;
  // How each block picks the next thread to run (see scheduler.cpp).
  Schedule schedule = Schedule::kMixed;
  // PCT's bug depth d: d - 1 priority change points per block.
  int64_t pct_depth = 3;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  size_t stack_bytes = size_t(1) << 20;  // instrumented frames are larger
#else
  size_t stack_bytes = size_t(256) << 10;
#endif
};

const Config& config();
void set_config(const Config& c);
int64_t next_grid_cap();
// Launches since the last set_config: the launch's schedules derive from (seed, this index), so
// the same settings and the same sequence of launches replay the same schedules.
uint64_t next_launch_index();
// Counts set_config calls: what the scheduler learns about a kernel (its steps per block, for
// PCT's change points) is forgotten when the settings change, so that a run replays exactly.
uint64_t config_generation();

struct Stats {
  uint64_t launches;
  uint64_t blocks;
  uint64_t threads;
  uint64_t switches;
  uint64_t pct_blocks;  // blocks run under the PCT schedule
};
Stats stats();

}  // namespace frcnn_emu
