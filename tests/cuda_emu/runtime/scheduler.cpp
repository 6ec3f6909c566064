// The emulator's runtime: runs a grid of blocks, each block's threads as fibers (glibc ucontext)
// on one OS thread, with a seeded scheduler that picks which runnable thread goes next.
//
// A thread runs until it reaches a scheduling point (a barrier, a warp collective, an atomic or
// a fence) or exits; the scheduler then picks which runnable thread goes next, by one of two
// schedules (Config::schedule, or a seeded draw per block):
//  * uniform: a uniformly random runnable thread. Threads progress at similar rates, so it
//    rarely starves one thread long enough to expose a race that needs a long delay.
//  * PCT, probabilistic concurrency testing (Burckhardt, Kothari, Musuvathi, Nagarakatte,
//    ASPLOS 2010): every thread gets a random distinct priority (per thread, or warp-major so
//    that a whole warp runs ahead of another), the highest-priority runnable thread always runs,
//    and at d - 1 steps drawn uniformly from the expected number of steps k the running thread
//    drops below every other. A bug that needs d ordering constraints between threads is hit
//    with probability >= 1 / (n k^(d-1)) per run, n threads; many need far less (one slow warp).
// Barriers and
// warp collectives complete as soon as every thread they name has arrived, so a missing
// __syncthreads shows as a wrong answer under some seeds, and misuse (a barrier some threads
// never reach, a warp mask that names exited or absent lanes, deadlock) is detected and reported
// as an exception instead of hanging.
//
// Sanitizers: fibers are announced to AddressSanitizer (stack switches) and ThreadSanitizer
// (each fiber is a TSan thread and no switch synchronises, so two threads of a block are
// ordered only by what orders them on a GPU: the launch, barriers, __syncwarp). The runtime's
// own bookkeeping is therefore excluded from TSan instrumentation.
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "config.h"
#include "frcnn_cuda_emu.h"
#include "sanitizer_hooks.h"

thread_local dim3 threadIdx;
thread_local dim3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace frcnn_emu {
namespace {

// CUDA's limits for compute capability 7.5 and later (the oldest architecture we build for).
constexpr int64_t kMaxThreadsPerBlock = 1024;
constexpr unsigned kMaxBlockDim[3] = {1024, 1024, 64};
constexpr int64_t kMaxGridDim[3] = {2147483647, 65535, 65535};
constexpr size_t kMaxDynamicShared = 48 * 1024;  // without cudaFuncSetAttribute opt-in
// Larger grids are legal on a GPU but would take hours here: lower the launch caps instead.
constexpr int64_t kMaxEmulatedBlocks = int64_t(1) << 22;

enum class State { kRunnable, kBarrier, kWarp, kExited };

enum class Misuse {
  kNone,
  kLaneNotInMask,
  kMaskNamesAbsentLane,
  kMaskNamesExitedLane,
  kBadWidth,
  kShflSourceNotInMask,
  kCollectiveMismatch,
  kBarrierAfterExit,
  kExitDuringBarrier,
  kBarrierSiteMismatch,
  kDeadlock,
  kNoMemory,
  kTooManyStatics,
};

struct Fiber {
  ucontext_t context;
  char* stack = nullptr;
  void* tsan = nullptr;
  dim3 index;
  int tid = 0;
  int warp = 0;
  int lane = 0;
  State state = State::kRunnable;
  bool started = false;
  // what the thread waits in
  BarrierKind barrier = BarrierKind::kSync;
  WarpOp op = WarpOp::kSyncwarp;
  unsigned mask = 0;
  uint64_t bits = 0;
  int arg = 0;
  int width = 32;
  Site site{nullptr, 0};
  uint64_t result = 0;
  // TSan: what this thread released at its last two __syncwarp arrivals, and which of them
  // each partner of the completed one is to be acquired from (see warp_collective)
  char warp_token[2] = {0, 0};
  uint64_t warp_arrivals = 0;
  uint8_t partner_token[32] = {};
  int barrier_parity = 0;
};

// TSan synchronisation objects of one launch and of one worker's sequence of blocks.
struct LaunchSync {
  char start = 0;  // released by the host before the launch, acquired by every thread
  char done = 0;   // released by every thread as it exits, acquired by the host after the launch
};

constexpr int kMaxStaticShared = 32;  // declarations per kernel

// One static __shared__ variable of a running block (FRCNN_STATIC_SHARED): its own allocation,
// so that AddressSanitizer sees an overrun and ThreadSanitizer sees the accesses.
struct StaticShared {
  const void* tag;  // the declaration (and template instantiation)
  void* memory;
};

struct Block {
  const LaunchConfig* config = nullptr;
  void (*body)(void*) = nullptr;
  void* context = nullptr;
  Fiber* fibers = nullptr;
  int num_threads = 0;
  int num_warps = 0;
  int* runnable = nullptr;  // thread ids
  int num_runnable = 0;
  int exited = 0;
  int at_barrier = 0;
  uint64_t rng = 0;
  ucontext_t scheduler;
  void* scheduler_tsan = nullptr;
  const void* scheduler_stack = nullptr;
  size_t scheduler_stack_size = 0;
  void* dynamic_shared = nullptr;
  // a plain array: std::vector's members would be TSan-instrumented calls from fibers
  StaticShared statics[kMaxStaticShared];
  int num_statics = 0;
  char statics_token = 0;  // released by each allocation, acquired by every thread that finds it
  // PCT: priorities by thread id, the steps after which the running thread is demoted
  bool pct = false;
  int64_t* priority = nullptr;
  uint64_t change_points[16] = {};
  int num_change_points = 0;
  uint64_t steps = 0;
  bool unsorted = true;  // PCT keeps `runnable` in ascending priority: the next is the last
  // the first misuse: reported by the scheduler, which formats the message
  Misuse misuse = Misuse::kNone;
  bool aborting = false;  // after a misuse: the remaining threads are resumed once, to end
  int misuse_tid = -1;
  int misuse_lane = -1;
  Site misuse_site{nullptr, 0};
  // TSan: each barrier generation has its own object (by parity: a thread can be one barrier
  // ahead of a slower one that is still leaving the previous barrier, never two).
  char barrier_token[2] = {0, 0};
  int barrier_generation = 0;
  LaunchSync* launch = nullptr;
  // Released by each thread as it exits, acquired by the scheduler when the block is over:
  // the scheduler then frees the block's shared memory, and releases the next block's `begin`,
  // which its threads acquire first: they come after this block (they reuse its memory).
  char done = 0;
  // Released by the scheduler before the block's threads start, acquired by each as it starts
  // (their TSan threads are reused, not created by the scheduler, which would order them).
  char begin = 0;
};

thread_local Block* t_block = nullptr;
thread_local Fiber* t_fiber = nullptr;

std::atomic<uint64_t> g_launches{0};
std::atomic<uint64_t> g_blocks{0};
std::atomic<uint64_t> g_threads{0};
std::atomic<uint64_t> g_switches{0};
std::atomic<uint64_t> g_pct_blocks{0};

// PCT draws its change points over the expected number of steps of a block. What a block of a
// kernel took is known after its first launch; until then a guess of a few steps per thread.
// The record is per kernel name and is forgotten when the settings change (a replay with the
// same settings and launches then draws the same change points).
class StepRecord {
 public:
  FRCNN_EMU_NO_TSAN uint64_t expected(const char* kernel, int num_threads) {
    std::lock_guard<std::mutex> lock(mutex_);
    forget_if_stale();
    for (const auto& e : entries_) {
      if (e.first == kernel) {
        return e.second;
      }
    }
    return 4 * static_cast<uint64_t>(num_threads);
  }
  FRCNN_EMU_NO_TSAN void record(const char* kernel, uint64_t steps) {
    std::lock_guard<std::mutex> lock(mutex_);
    forget_if_stale();
    for (auto& e : entries_) {
      if (e.first == kernel) {
        e.second = steps;
        return;
      }
    }
    entries_.emplace_back(kernel, steps);
  }

 private:
  void forget_if_stale() {
    if (generation_ != config_generation()) {
      generation_ = config_generation();
      entries_.clear();
    }
  }
  std::mutex mutex_;
  uint64_t generation_ = ~uint64_t(0);
  std::vector<std::pair<std::string, uint64_t>> entries_;
};
StepRecord g_steps;

FRCNN_EMU_NO_TSAN uint64_t splitmix(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// ------------------------------------------------------------ what a worker keeps
// A worker's fiber stacks and TSan threads outlive its launch: the host thread keeps them per
// worker index for its next launches. Mapping the stacks afresh per launch, and under the
// sanitizers resetting their shadow per block and creating TSan threads per block, took most
// of a sanitizer run (profiled: ASan's shadow remapping for the stacks; TSan's thread start, a
// zeroed 0.8 MB and 1.7 ms each with GCC 12's runtime).
//
// Reuse orders nothing that was not ordered. Worker w of a launch runs on what worker w of the
// same host thread's earlier launches ran on, all of which happens before the launch (the host
// acquired their end); the blocks of one worker are ordered anyway (Block::begin); workers of
// one launch, and other host threads, never share what they keep.
class WorkerKeep {
 public:
  // TSan threads kept: the kernels' largest block. Larger blocks (the emulator's own tests)
  // create and end the rest per block.
  static constexpr int kKeptTsanThreads = 256;

  WorkerKeep() = default;
  WorkerKeep(const WorkerKeep&) = delete;
  WorkerKeep& operator=(const WorkerKeep&) = delete;
  ~WorkerKeep() {
    release_stacks();
    for (void* f : tsan_) {
      if (f != nullptr) {
        tsan_destroy_fiber(f);
      }
    }
  }

  // Thread t's stack, clean for AddressSanitizer. A thread that ends normally leaves its stack
  // clean (returns unpoison their frames; the switch out of a thread is a no-return call, which
  // unpoisons the rest), so only a new mapping and a stack whose frames a misuse abandoned are
  // unpoisoned here, instead of every stack of every block.
  FRCNN_EMU_NO_TSAN char* stack(int t, size_t bytes) {
    if (bytes != stack_bytes_) {
      release_stacks();
      stack_bytes_ = bytes;
    }
    const size_t i = static_cast<size_t>(t);
    while (stacks_.size() <= i) {
      // one inaccessible page below each stack: an overflow faults instead of corrupting
      void* p =
          mmap(nullptr, bytes + page(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) {
        throw std::runtime_error("emulated CUDA: could not map a fiber stack");
      }
      mprotect(p, page(), PROT_NONE);
      stacks_.push_back(static_cast<char*>(p) + page());
      dirty_.push_back(1);
    }
    if (dirty_[i]) {
      asan_unpoison(stacks_[i], bytes);
      dirty_[i] = 0;
    }
    return stacks_[i];
  }

  // Thread t's TSan thread (null in other builds).
  FRCNN_EMU_NO_TSAN void* tsan_thread(int t) {
    if (t >= kKeptTsanThreads) {
      return tsan_create_fiber();
    }
    const size_t i = static_cast<size_t>(t);
    if (tsan_.size() <= i) {
      tsan_.resize(i + 1, nullptr);
    }
    if (tsan_[i] == nullptr) {
      tsan_[i] = tsan_create_fiber();
    }
    return tsan_[i];
  }

  // After each block. After a misuse every thread's stack and TSan thread is renewed: their
  // frames were abandoned (TSan's call stack still holds them).
  FRCNN_EMU_NO_TSAN void block_done(int t, void* tsan_thread, bool misuse) {
    const size_t i = static_cast<size_t>(t);
    if (misuse) {
      dirty_[i] = 1;  // stack(t) made it
    }
    if (t >= kKeptTsanThreads) {
      tsan_destroy_fiber(tsan_thread);
    } else if (misuse) {
      tsan_destroy_fiber(tsan_thread);
      tsan_[i] = nullptr;
    }
  }

 private:
  void release_stacks() {
    for (char* s : stacks_) {
      munmap(s - page(), stack_bytes_ + page());
    }
    stacks_.clear();
    dirty_.clear();
  }
  static size_t page() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }

  std::vector<char*> stacks_;
  std::vector<uint8_t> dirty_;  // per stack: to be unpoisoned before its next use
  size_t stack_bytes_ = 0;
  std::vector<void*> tsan_;
};

// Per host thread: what its launches' workers keep, by worker index. Only the host thread
// touches the list (each WorkerKeep has its own allocation); worker w touches only its own.
class HostKeep {
 public:
  FRCNN_EMU_NO_TSAN WorkerKeep* worker(size_t w) {
    while (workers_.size() <= w) {
      workers_.push_back(std::make_unique<WorkerKeep>());
    }
    return workers_[w].get();
  }

 private:
  std::vector<std::unique_ptr<WorkerKeep>> workers_;
};

thread_local HostKeep t_host_keep;

// ----------------------------------------------------------------------------- switching
FRCNN_EMU_NO_TSAN void enter_fiber(Block& b, Fiber& f) {
  threadIdx = f.index;
  t_fiber = &f;
  f.started = true;
  g_switches.fetch_add(1, std::memory_order_relaxed);
  void* fake_stack = nullptr;
  asan_start_switch(&fake_stack, f.stack, config().stack_bytes);
  // Never synchronising: the scheduler is no GPU thread, and if switches ordered the fibers no
  // race could show. What orders them is explicit (launch start, barriers, __syncwarp).
  tsan_switch_to(f.tsan);
  swapcontext(&b.scheduler, &f.context);
  asan_finish_switch(fake_stack, nullptr, nullptr);
  t_fiber = nullptr;
}

// The end of a thread: it tells the sanitizers, and never runs again.
[[noreturn]] FRCNN_EMU_NO_TSAN void end_fiber() {
  Block& b = *t_block;
  Fiber& f = *t_fiber;
  tsan_release(&b.done);
  tsan_release(&b.launch->done);
  asan_start_switch(nullptr, b.scheduler_stack, b.scheduler_stack_size);
  tsan_switch_to(b.scheduler_tsan);
  swapcontext(&f.context, &b.scheduler);
  std::abort();  // an ended fiber is never resumed
}

// From a fiber back to the scheduler, until the scheduler resumes it.
FRCNN_EMU_NO_TSAN void leave_fiber() {
  Block& b = *t_block;
  Fiber& f = *t_fiber;
  void* fake_stack = nullptr;
  asan_start_switch(&fake_stack, b.scheduler_stack, b.scheduler_stack_size);
  tsan_switch_to(b.scheduler_tsan);
  swapcontext(&f.context, &b.scheduler);
  asan_finish_switch(fake_stack, nullptr, nullptr);
  if (b.aborting) {
    end_fiber();  // the block is abandoned after a misuse elsewhere
  }
}

FRCNN_EMU_NO_TSAN void fiber_main() {
  Block& b = *t_block;
  const void* from_stack = nullptr;
  size_t from_size = 0;
  asan_finish_switch(nullptr, &from_stack, &from_size);
  if (b.scheduler_stack == nullptr) {
    b.scheduler_stack = from_stack;
    b.scheduler_stack_size = from_size;
  }
  tsan_acquire(&b.launch->start);
  tsan_acquire(&b.begin);
  b.body(b.context);
  t_fiber->state = State::kExited;
  end_fiber();
}

// Called on a fiber: records the first misuse and hands control back for good.
[[noreturn]] FRCNN_EMU_NO_TSAN void misuse(Misuse what, int lane, Site site) {
  Block& b = *t_block;
  if (b.misuse == Misuse::kNone) {
    b.misuse = what;
    b.misuse_tid = t_fiber->tid;
    b.misuse_lane = lane;
    b.misuse_site = site;
  }
  leave_fiber();  // the scheduler abandons the block: this returns into end_fiber()
  std::abort();
}

FRCNN_EMU_NO_TSAN void scheduler_misuse(Block& b, Misuse what, int tid, int lane, Site site) {
  if (b.misuse == Misuse::kNone) {
    b.misuse = what;
    b.misuse_tid = tid;
    b.misuse_lane = lane;
    b.misuse_site = site;
  }
}

FRCNN_EMU_NO_TSAN unsigned warp_lanes(const Block& b, int warp) {
  const int n = std::min(32, b.num_threads - 32 * warp);
  return n == 32 ? 0xffffffffu : ((1u << n) - 1u);
}

FRCNN_EMU_NO_TSAN unsigned exited_lanes(const Block& b, int warp) {
  unsigned m = 0;
  const unsigned lanes = warp_lanes(b, warp);
  for (int l = 0; l < 32; ++l) {
    if ((lanes >> l & 1u) && b.fibers[32 * warp + l].state == State::kExited) {
      m |= 1u << l;
    }
  }
  return m;
}

FRCNN_EMU_NO_TSAN void make_runnable(Block& b, Fiber& f) {
  f.state = State::kRunnable;
  b.runnable[b.num_runnable++] = f.tid;
  b.unsorted = true;
}

// ------------------------------------------------------------------ completing collectives
FRCNN_EMU_NO_TSAN int shfl_source(const Fiber& f) {
  const int l = f.lane;
  const int w = f.width;
  const int base = (l / w) * w;
  switch (f.op) {
    case WarpOp::kShfl:
      return base + ((f.arg % w) + w) % w;
    case WarpOp::kShflUp:
      return (l - base) - f.arg < 0 ? l : l - f.arg;
    case WarpOp::kShflDown:
      return (l - base) + f.arg >= w ? l : l + f.arg;
    case WarpOp::kShflXor: {
      const int src = l ^ (f.arg & 31);
      return src >= base + w ? l : src;
    }
    default:
      return l;
  }
}

// The warp collective that `f` waits in completes when every lane of its mask waits in one
// with the same operation and mask.
FRCNN_EMU_NO_TSAN void try_complete_warp_op(Block& b, Fiber& f) {
  Fiber* lanes = b.fibers + 32 * f.warp;
  const unsigned mask = f.mask;
  for (int l = 0; l < 32; ++l) {
    if (!(mask >> l & 1u)) {
      continue;
    }
    const Fiber& g = lanes[l];
    if (g.state == State::kExited) {
      scheduler_misuse(b, Misuse::kMaskNamesExitedLane, f.tid, l, f.site);
      return;
    }
    if (g.state != State::kWarp) {
      return;  // not there yet
    }
    if (g.op != f.op || g.mask != mask || g.width != f.width) {
      scheduler_misuse(b, Misuse::kCollectiveMismatch, g.tid, l, g.site);
      return;
    }
  }
  uint64_t ballot = 0;
  for (int l = 0; l < 32; ++l) {
    if ((mask >> l & 1u) && lanes[l].bits) {
      ballot |= uint64_t(1) << l;
    }
  }
  for (int l = 0; l < 32; ++l) {
    if (!(mask >> l & 1u)) {
      continue;
    }
    Fiber& g = lanes[l];
    switch (g.op) {
      case WarpOp::kSyncwarp:
        g.result = 0;
        break;
      case WarpOp::kBallot:
        g.result = ballot;
        break;
      case WarpOp::kAny:
        g.result = ballot != 0;
        break;
      case WarpOp::kAll:
        g.result = ballot == mask;
        break;
      default: {
        const int src = shfl_source(g);
        if (!(mask >> src & 1u)) {
          scheduler_misuse(b, Misuse::kShflSourceNotInMask, g.tid, src, g.site);
          return;
        }
        g.result = lanes[src].bits;
      }
    }
  }
  if (f.op == WarpOp::kSyncwarp) {
    for (int l = 0; l < 32; ++l) {
      if (!(mask >> l & 1u)) {
        continue;
      }
      for (int k = 0; k < 32; ++k) {
        if (mask >> k & 1u) {
          lanes[l].partner_token[k] = static_cast<uint8_t>((lanes[k].warp_arrivals - 1) % 2);
        }
      }
    }
  }
  for (int l = 0; l < 32; ++l) {
    if (mask >> l & 1u) {
      make_runnable(b, lanes[l]);
    }
  }
}

FRCNN_EMU_NO_TSAN void try_complete_barrier(Block& b) {
  if (b.at_barrier != b.num_threads) {
    return;
  }
  const Fiber& first = b.fibers[0];
  int count = 0;
  for (int t = 0; t < b.num_threads; ++t) {
    const Fiber& f = b.fibers[t];
    if (f.site.line != first.site.line || f.site.file != first.site.file ||
        f.barrier != first.barrier) {
      scheduler_misuse(b, Misuse::kBarrierSiteMismatch, t, -1, f.site);
      return;
    }
    count += static_cast<int>(f.bits);
  }
  for (int t = 0; t < b.num_threads; ++t) {
    Fiber& f = b.fibers[t];
    switch (f.barrier) {
      case BarrierKind::kCount:
        f.result = static_cast<uint64_t>(count);
        break;
      case BarrierKind::kAnd:
        f.result = count == b.num_threads;
        break;
      case BarrierKind::kOr:
        f.result = count > 0;
        break;
      default:
        f.result = 0;
    }
    make_runnable(b, f);
  }
  b.at_barrier = 0;
  ++b.barrier_generation;
}

// ----------------------------------------------------------------------------- one block
std::string site_str(Site s) {
  if (s.file == nullptr) {
    return "?";
  }
  std::string f = s.file;
  const auto slash = f.find_last_of('/');
  return (slash == std::string::npos ? f : f.substr(slash + 1)) + ":" + std::to_string(s.line);
}

std::string dim_str(dim3 d) {
  return "(" + std::to_string(d.x) + "," + std::to_string(d.y) + "," + std::to_string(d.z) + ")";
}

std::string describe_misuse(const Block& b) {
  std::ostringstream os;
  const Fiber* f = b.misuse_tid >= 0 ? &b.fibers[b.misuse_tid] : nullptr;
  const std::string who = f ? "thread " + dim_str(f->index) + " (warp " + std::to_string(f->warp) +
          ", lane " + std::to_string(f->lane) + ")"
                            : std::string("a thread");
  const std::string at = site_str(b.misuse_site);
  switch (b.misuse) {
    case Misuse::kLaneNotInMask:
      os << who << " called a warp collective at " << at
         << " with a mask that does not name its own lane";
      break;
    case Misuse::kMaskNamesAbsentLane:
      os << who << " called a warp collective at " << at << " with a mask naming lane "
         << b.misuse_lane << ", which does not exist in its warp (block of " << b.num_threads
         << " threads)";
      break;
    case Misuse::kMaskNamesExitedLane:
      os << who << " called a warp collective at " << at << " with a mask naming lane "
         << b.misuse_lane << ", which has exited";
      break;
    case Misuse::kBadWidth:
      os << who << " called a shuffle at " << at << " with width " << b.misuse_lane
         << " (must be a power of 2 in [1, 32])";
      break;
    case Misuse::kShflSourceNotInMask:
      os << who << " shuffled at " << at << " from lane " << b.misuse_lane
         << ", which is not in the mask";
      break;
    case Misuse::kCollectiveMismatch:
      os << "the lanes of one mask called different warp collectives (or masks/widths): " << who
         << " at " << at;
      break;
    case Misuse::kBarrierAfterExit:
      os << "barrier in divergent code: " << who << " reached __syncthreads at " << at << " after "
         << b.exited << " thread(s) of the block had exited";
      break;
    case Misuse::kExitDuringBarrier:
      os << "barrier in divergent code: " << who << " exited while " << b.at_barrier
         << " thread(s) of the block waited in __syncthreads at " << at;
      break;
    case Misuse::kBarrierSiteMismatch:
      os << "barrier in divergent code: threads of one block wait in different __syncthreads calls "
            "("
         << site_str(b.fibers[0].site) << " and " << at << ")";
      break;
    case Misuse::kDeadlock: {
      int warp_wait = 0;
      for (int t = 0; t < b.num_threads; ++t) {
        warp_wait += b.fibers[t].state == State::kWarp;
      }
      os << "deadlock: no thread can run; " << b.at_barrier << " wait in __syncthreads, "
         << warp_wait << " in warp collectives (e.g. " << who << " at " << at << "), " << b.exited
         << " exited";
      break;
    }
    case Misuse::kNoMemory:
      os << who << " could not allocate a static __shared__ variable";
      break;
    case Misuse::kTooManyStatics:
      os << who << " declared more than " << kMaxStaticShared
         << " static __shared__ variables (raise kMaxStaticShared)";
      break;
    case Misuse::kNone:
      break;
  }
  os << "; block " << dim_str(blockIdx) << " of kernel '" << b.config->kernel_name << "'";
  return os.str();
}

FRCNN_EMU_NO_TSAN void first_deadlocked(Block& b) {
  for (int t = 0; t < b.num_threads; ++t) {
    if (b.fibers[t].state == State::kWarp || b.fibers[t].state == State::kBarrier) {
      scheduler_misuse(b, Misuse::kDeadlock, t, -1, b.fibers[t].site);
      return;
    }
  }
}

struct WorkerState {
  WorkerKeep* keep = nullptr;  // this worker's, kept by the host thread
  std::vector<Fiber> fibers;
  std::vector<int> runnable;
  std::vector<int64_t> priority;
};

FRCNN_EMU_NO_TSAN void shuffle(int64_t* v, int n, uint64_t& rng) {
  for (int i = n - 1; i > 0; --i) {
    std::swap(v[i], v[splitmix(rng) % static_cast<uint64_t>(i + 1)]);
  }
}

// PCT's initial priorities, d .. d + n - 1 (0 .. d - 1 are left for the change points):
// per thread, or warp-major (a random order of warps, of lanes within each warp).
FRCNN_EMU_NO_TSAN void pct_setup(Block& b, uint64_t expected_steps) {
  const int64_t d = config().pct_depth;
  const int n = b.num_threads;
  int64_t* pri = b.priority;
  if (splitmix(b.rng) & 1) {
    for (int t = 0; t < n; ++t) {
      pri[t] = t;
    }
    shuffle(pri, n, b.rng);
  } else {
    std::vector<int64_t> warp_rank(static_cast<size_t>(b.num_warps));
    for (int w = 0; w < b.num_warps; ++w) {
      warp_rank[static_cast<size_t>(w)] = w;
    }
    shuffle(warp_rank.data(), b.num_warps, b.rng);
    int64_t lane_rank[32];
    for (int w = 0; w < b.num_warps; ++w) {
      const int lanes = std::min(32, n - 32 * w);
      for (int l = 0; l < lanes; ++l) {
        lane_rank[l] = l;
      }
      shuffle(lane_rank, lanes, b.rng);
      for (int l = 0; l < lanes; ++l) {
        pri[32 * w + l] = 32 * warp_rank[static_cast<size_t>(w)] + lane_rank[l];
      }
    }
  }
  for (int t = 0; t < n; ++t) {
    pri[t] += d;
  }
  b.num_change_points = static_cast<int>(d - 1);
  for (int i = 0; i < b.num_change_points; ++i) {
    b.change_points[i] = 1 + splitmix(b.rng) % std::max<uint64_t>(expected_steps, 1);
  }
}

// The index into b.runnable of the thread that runs next.
FRCNN_EMU_NO_TSAN int pick_next(Block& b) {
  if (!b.pct) {
    return static_cast<int>(splitmix(b.rng) % static_cast<uint64_t>(b.num_runnable));
  }
  // Sorted once after a barrier or collective wakes threads, not scanned at every step: the
  // highest-priority thread runs until it blocks (removing the last element keeps the order).
  if (b.unsorted) {
    const int64_t* pri = b.priority;
    std::sort(
        b.runnable, b.runnable + b.num_runnable, [pri](int a, int c) { return pri[a] < pri[c]; });
    b.unsorted = false;
  }
  return b.num_runnable - 1;
}

// PCT: after step number b.steps, the thread that just ran drops to priority i at the i-th
// change point, below every thread that has not been demoted.
FRCNN_EMU_NO_TSAN void pct_after_step(Block& b, const Fiber& f) {
  for (int i = 0; i < b.num_change_points; ++i) {
    if (b.change_points[i] == b.steps) {
      b.priority[f.tid] = i;
      b.unsorted = true;
    }
  }
}

// Returns "" or the misuse message.
FRCNN_EMU_NO_TSAN std::string run_block(
    const LaunchConfig& c, void (*body)(void*), void* context, int64_t linear, uint64_t launch_id,
    LaunchSync& launch, uint64_t expected_steps, std::atomic<uint64_t>& max_steps,
    WorkerState& ws) {
  const Config& cfg = config();
  blockIdx = dim3(
      static_cast<unsigned>(linear % c.grid.x),
      static_cast<unsigned>((linear / c.grid.x) % c.grid.y),
      static_cast<unsigned>(linear / (int64_t(c.grid.x) * c.grid.y)));
  Block b;
  b.config = &c;
  b.body = body;
  b.context = context;
  b.num_threads = static_cast<int>(c.block.x * c.block.y * c.block.z);
  b.num_warps = (b.num_threads + 31) / 32;
  ws.fibers.resize(b.num_threads);
  ws.runnable.resize(b.num_threads);
  ws.priority.resize(b.num_threads);
  b.fibers = ws.fibers.data();
  b.runnable = ws.runnable.data();
  b.priority = ws.priority.data();
  b.rng = cfg.seed ^ (launch_id * 0xd1342543de82ef95ull) ^
      (static_cast<uint64_t>(linear) * 0x9e3779b97f4a7c15ull);
  splitmix(b.rng);
  b.pct = cfg.schedule == Schedule::kPct ||
      (cfg.schedule == Schedule::kMixed && (splitmix(b.rng) >> 17 & 1));
  if (b.pct) {
    pct_setup(b, expected_steps);
    g_pct_blocks.fetch_add(1, std::memory_order_relaxed);
  }
  // Dynamic shared memory: its own allocation of exactly the launch's size (so AddressSanitizer
  // sees an overrun), filled with 0xff bytes (NaN, -1) so that a read before any write shows.
  b.dynamic_shared = std::malloc(c.shared_bytes == 0 ? 1 : c.shared_bytes);
  std::memset(b.dynamic_shared, 0xff, c.shared_bytes == 0 ? 1 : c.shared_bytes);
  b.scheduler_tsan = tsan_current_fiber();
  b.launch = &launch;
  t_block = &b;
  for (int t = 0; t < b.num_threads; ++t) {
    Fiber& f = b.fibers[t];
    f = Fiber();
    f.tid = t;
    f.warp = t / 32;
    f.lane = t % 32;
    f.index = dim3(t % c.block.x, (t / c.block.x) % c.block.y, t / (c.block.x * c.block.y));
    f.stack = ws.keep->stack(t, cfg.stack_bytes);
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = f.stack;
    f.context.uc_stack.ss_size = cfg.stack_bytes;
    f.context.uc_link = nullptr;
    makecontext(&f.context, &fiber_main, 0);
    f.tsan = ws.keep->tsan_thread(t);
    b.runnable[t] = t;
  }
  b.num_runnable = b.num_threads;
  tsan_release(&b.begin);

  while (b.misuse == Misuse::kNone && b.exited < b.num_threads) {
    if (b.num_runnable == 0) {
      first_deadlocked(b);
      break;
    }
    const int pick = pick_next(b);
    Fiber& f = b.fibers[b.runnable[pick]];
    enter_fiber(b, f);
    ++b.steps;
    if (b.misuse != Misuse::kNone) {
      break;
    }
    if (b.pct) {
      pct_after_step(b, f);
    }
    if (f.state == State::kRunnable) {
      continue;  // a yield point: it stays in the pool
    }
    b.runnable[pick] = b.runnable[--b.num_runnable];
    if (f.state == State::kExited) {
      ++b.exited;
      if (b.at_barrier > 0) {
        scheduler_misuse(b, Misuse::kExitDuringBarrier, f.tid, -1, b.fibers[0].site);
        for (int t = 0; t < b.num_threads; ++t) {
          if (b.fibers[t].state == State::kBarrier) {
            b.misuse_site = b.fibers[t].site;
            break;
          }
        }
        break;
      }
      // a lane that exits while others wait on it in a warp collective
      for (int l = 0; l < 32; ++l) {
        const Fiber& g = b.fibers[32 * f.warp + l];
        if (32 * f.warp + l < b.num_threads && g.state == State::kWarp && (g.mask >> f.lane & 1u)) {
          scheduler_misuse(b, Misuse::kMaskNamesExitedLane, g.tid, f.lane, g.site);
          break;
        }
      }
    } else if (f.state == State::kWarp) {
      try_complete_warp_op(b, f);
    } else {
      try_complete_barrier(b);
    }
  }
  if (b.misuse != Misuse::kNone) {
    // Resume each unfinished thread once so that it ends properly (sanitizer bookkeeping);
    // none runs kernel code again.
    b.aborting = true;
    for (int t = 0; t < b.num_threads; ++t) {
      Fiber& f = b.fibers[t];
      if (f.started && f.state != State::kExited) {
        enter_fiber(b, f);
      }
    }
  }
  for (int t = 0; t < b.num_threads; ++t) {
    ws.keep->block_done(t, b.fibers[t].tsan, b.misuse != Misuse::kNone);
  }
  tsan_acquire(&b.done);
  std::free(b.dynamic_shared);
  for (int i = 0; i < b.num_statics; ++i) {
    std::free(b.statics[i].memory);
  }
  uint64_t seen = max_steps.load(std::memory_order_relaxed);
  while (seen < b.steps && !max_steps.compare_exchange_weak(seen, b.steps)) {
  }
  t_block = nullptr;
  g_blocks.fetch_add(1, std::memory_order_relaxed);
  g_threads.fetch_add(static_cast<uint64_t>(b.num_threads), std::memory_order_relaxed);
  return b.misuse == Misuse::kNone ? std::string() : describe_misuse(b);
}

std::string check_launch(const LaunchConfig& c) {
  std::ostringstream os;
  const unsigned block[3] = {c.block.x, c.block.y, c.block.z};
  const unsigned grid[3] = {c.grid.x, c.grid.y, c.grid.z};
  const char* axis = "xyz";
  for (int i = 0; i < 3; ++i) {
    if (block[i] == 0 || block[i] > kMaxBlockDim[i]) {
      os << "blockDim." << axis[i] << " = " << block[i] << " is outside [1, " << kMaxBlockDim[i]
         << "]";
      return os.str();
    }
    if (grid[i] == 0 || int64_t(grid[i]) > kMaxGridDim[i]) {
      os << "gridDim." << axis[i] << " = " << grid[i] << " is outside [1, " << kMaxGridDim[i]
         << "]";
      return os.str();
    }
  }
  const int64_t threads = int64_t(block[0]) * block[1] * block[2];
  if (threads > kMaxThreadsPerBlock) {
    os << "a block of " << threads << " threads " << dim_str(c.block) << " exceeds "
       << kMaxThreadsPerBlock;
    return os.str();
  }
  if (c.shared_bytes > kMaxDynamicShared) {
    os << c.shared_bytes << " bytes of dynamic shared memory exceed the " << kMaxDynamicShared
       << "-byte limit";
    return os.str();
  }
  const int64_t blocks = int64_t(grid[0]) * grid[1] * grid[2];
  if (blocks > kMaxEmulatedBlocks) {
    os << "a grid of " << blocks << " blocks is legal but too large to emulate (limit "
       << kMaxEmulatedBlocks << "); lower the launch caps (max_grid_dim)";
    return os.str();
  }
  return std::string();
}

}  // namespace

// ------------------------------------------------------------------- called from kernels
FRCNN_EMU_NO_TSAN int block_barrier(BarrierKind kind, int predicate, Site site) {
  Block& b = *t_block;
  Fiber& f = *t_fiber;
  if (b.exited > 0) {
    misuse(Misuse::kBarrierAfterExit, -1, site);
  }
  f.state = State::kBarrier;
  f.barrier = kind;
  f.bits = static_cast<uint64_t>(predicate != 0);
  f.site = site;
  ++b.at_barrier;
  f.barrier_parity = b.barrier_generation % 2;
  tsan_release(&b.barrier_token[f.barrier_parity]);
  leave_fiber();
  tsan_acquire(&b.barrier_token[f.barrier_parity]);
  return static_cast<int>(f.result);
}

FRCNN_EMU_NO_TSAN uint64_t
warp_collective(WarpOp op, unsigned mask, uint64_t bits, int arg, int width, Site site) {
  Block& b = *t_block;
  Fiber& f = *t_fiber;
  if (width < 1 || width > 32 || (width & (width - 1)) != 0) {
    misuse(Misuse::kBadWidth, width, site);
  }
  if (!(mask >> f.lane & 1u)) {
    misuse(Misuse::kLaneNotInMask, f.lane, site);
  }
  const unsigned absent = mask & ~warp_lanes(b, f.warp);
  if (absent != 0) {
    misuse(Misuse::kMaskNamesAbsentLane, __builtin_ctz(absent), site);
  }
  const unsigned gone = mask & exited_lanes(b, f.warp);
  if (gone != 0) {
    misuse(Misuse::kMaskNamesExitedLane, __builtin_ctz(gone), site);
  }
  f.state = State::kWarp;
  f.op = op;
  f.mask = mask;
  f.bits = bits;
  f.arg = arg;
  f.width = width;
  f.site = site;
  // Only __syncwarp orders memory among its lanes; shuffles and votes exchange values only.
  // Each lane releases into its own object (two, alternating: it may arrive at its next
  // __syncwarp before a partner has left this one) and, when leaving, acquires the object each
  // partner released into at this __syncwarp (recorded when it completed).
  if (op == WarpOp::kSyncwarp) {
    tsan_release(&f.warp_token[f.warp_arrivals % 2]);
    ++f.warp_arrivals;
  }
  leave_fiber();
  if (op == WarpOp::kSyncwarp) {
    Fiber* lanes = b.fibers + 32 * f.warp;
    for (int l = 0; l < 32; ++l) {
      if (mask >> l & 1u) {
        tsan_acquire(&lanes[l].warp_token[f.partner_token[l]]);
      }
    }
  }
  return f.result;
}

// The lanes of the caller's warp that have not exited. On a GPU it is the lanes converged with
// the caller right now; using it as the mask of a collective inside divergent code therefore
// names lanes that never arrive, which this emulator reports as a deadlock.
FRCNN_EMU_NO_TSAN unsigned active_mask() {
  const Block& b = *t_block;
  const Fiber& f = *t_fiber;
  return warp_lanes(b, f.warp) & ~exited_lanes(b, f.warp);
}

FRCNN_EMU_NO_TSAN void yield_point() {
  if (t_fiber != nullptr) {
    leave_fiber();
  }
}

FRCNN_EMU_NO_TSAN void fence() {
  yield_point();
}

void* dynamic_shared_memory() {
  return t_block == nullptr ? nullptr : t_block->dynamic_shared;
}

// The first thread of a block to reach a static __shared__ declaration allocates the variable
// (exact size, 0xff bytes like dynamic shared memory). TSan sees the allocation as the
// scheduler's (whose history is only what precedes the block), released to every thread that
// finds it: a thread writing the variable before the first barrier does not race with the
// allocation made by another, while the threads' own accesses stay unordered.
FRCNN_EMU_NO_TSAN void* static_shared(const void* tag, size_t bytes, size_t align) {
  Block& b = *t_block;
  for (int i = 0; i < b.num_statics; ++i) {
    if (b.statics[i].tag == tag) {
      tsan_acquire(&b.statics_token);
      return b.statics[i].memory;
    }
  }
  if (b.num_statics == kMaxStaticShared) {
    misuse(Misuse::kTooManyStatics, -1, Site{nullptr, 0});
  }
  void* fiber = tsan_current_fiber();
  tsan_switch_to(b.scheduler_tsan);
  void* p = nullptr;
  if (posix_memalign(&p, std::max<size_t>(align, 16), bytes == 0 ? 1 : bytes) != 0) {
    p = nullptr;
  } else {
    std::memset(p, 0xff, bytes);
    b.statics[b.num_statics++] = StaticShared{tag, p};
    tsan_release(&b.statics_token);
  }
  tsan_switch_to(fiber);
  if (p == nullptr) {
    misuse(Misuse::kNoMemory, -1, Site{nullptr, 0});
  }
  tsan_acquire(&b.statics_token);
  return p;
}

int64_t max_grid_dim() {
  return next_grid_cap();
}

void run_grid(const LaunchConfig& c, void (*body)(void*), void* context) {
  const std::string bad = check_launch(c);
  if (!bad.empty()) {
    throw std::runtime_error(
        std::string("emulated CUDA: invalid launch configuration of kernel '") + c.kernel_name +
        "': " + bad);
  }
  g_launches.fetch_add(1);
  const uint64_t launch_id = next_launch_index();
  const int64_t num_blocks = int64_t(c.grid.x) * c.grid.y * c.grid.z;
  // Blocks start in a seeded random order, like a GPU's, which promises no order at all.
  std::vector<int64_t> order(static_cast<size_t>(num_blocks));
  for (int64_t i = 0; i < num_blocks; ++i) {
    order[static_cast<size_t>(i)] = i;
  }
  uint64_t rng = config().seed ^ (launch_id * 0xa0761d6478bd642full);
  for (int64_t i = num_blocks - 1; i > 0; --i) {
    std::swap(
        order[static_cast<size_t>(i)],
        order[static_cast<size_t>(splitmix(rng) % static_cast<uint64_t>(i + 1))]);
  }
  const uint64_t expected_steps =
      g_steps.expected(c.kernel_name, static_cast<int>(int64_t(c.block.x) * c.block.y * c.block.z));
  std::atomic<uint64_t> max_steps{0};
  LaunchSync launch;
  tsan_release(&launch.start);  // the threads see what the host wrote before the launch
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  std::string error;
  auto worker = [&](WorkerKeep* keep) {
    blockDim = c.block;
    gridDim = c.grid;
    WorkerState ws;
    ws.keep = keep;
    for (;;) {
      const int64_t i = next.fetch_add(1);
      if (i >= num_blocks || failed.load()) {
        break;
      }
      std::string e = run_block(
          c, body, context, order[static_cast<size_t>(i)], launch_id, launch, expected_steps,
          max_steps, ws);
      if (!e.empty()) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (error.empty()) {
          error = std::move(e);
        }
        failed.store(true);
      }
    }
  };
  const int64_t workers = std::min<int64_t>(std::max<int64_t>(config().workers, 1), num_blocks);
  if (workers == 1) {
    const dim3 saved_block = blockDim, saved_grid = gridDim, saved_idx = blockIdx;
    worker(t_host_keep.worker(0));
    blockDim = saved_block;
    gridDim = saved_grid;
    blockIdx = saved_idx;
  } else {
    std::vector<std::thread> threads;
    for (int64_t w = 0; w < workers; ++w) {
      threads.emplace_back(worker, t_host_keep.worker(static_cast<size_t>(w)));
    }
    for (auto& t : threads) {
      t.join();
    }
  }
  tsan_acquire(&launch.done);  // and the host (so the next launch) sees what they wrote
  g_steps.record(c.kernel_name, max_steps.load());
  if (failed.load()) {
    throw std::runtime_error("emulated CUDA: " + error);
  }
}

Stats stats() {
  return Stats{
      g_launches.load(), g_blocks.load(), g_threads.load(), g_switches.load(), g_pct_blocks.load()};
}

}  // namespace frcnn_emu
