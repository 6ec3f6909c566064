#pragma once

#include <ATen/Parallel.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

namespace frcnn_fast {

// Stable LSD radix sort of `items` by an unsigned key (ascending). Stability is the point:
// NMS ranks equal scores in input order and batched NMS sorts an already score-ordered list by
// group, so both get their tie order for free. Passes whose digit is the same for every key are
// skipped (group ids and half-precision scores usually leave most of them constant).
template <typename Key, typename Item>
void radix_sort_stable(std::vector<Key>& keys, std::vector<Item>& items) {
  constexpr int kBits = 11;
  constexpr size_t kBuckets = size_t(1) << kBits;
  constexpr int kPasses = (int(sizeof(Key)) * 8 + kBits - 1) / kBits;
  const size_t n = keys.size();
  if (n < 2) {
    return;
  }
  // Digits above the highest bit in which keys differ are the same for every key: no
  // histogram, no pass (group ids use a few of their 64 bits).
  Key varying = 0;
  for (size_t i = 0; i < n; ++i) {
    varying |= keys[i] ^ keys[0];
  }
  int passes = 0;
  while (passes < kPasses && (varying >> (passes * kBits)) != 0) {
    ++passes;
  }
  if (passes == 0) {
    return;
  }
  std::vector<Key> keys_tmp(n);
  std::vector<Item> items_tmp(n);
  std::vector<std::array<size_t, kBuckets>> counts(passes);
  for (auto& c : counts) {
    c.fill(0);
  }
  // One read of the keys builds every pass's histogram.
  for (size_t i = 0; i < n; ++i) {
    const Key k = keys[i];
    for (int p = 0; p < passes; ++p) {
      ++counts[p][(k >> (p * kBits)) & (kBuckets - 1)];
    }
  }
  for (int p = 0; p < passes; ++p) {
    auto& c = counts[p];
    const int shift = p * kBits;
    if (c[(keys[0] >> shift) & (kBuckets - 1)] == n) {
      continue;  // every key has this digit: the pass would not move anything
    }
    size_t sum = 0;
    for (size_t b = 0; b < kBuckets; ++b) {
      const size_t v = c[b];
      c[b] = sum;
      sum += v;
    }
    for (size_t i = 0; i < n; ++i) {
      const size_t dst = c[(keys[i] >> shift) & (kBuckets - 1)]++;
      keys_tmp[dst] = keys[i];
      items_tmp[dst] = items[i];
    }
    keys.swap(keys_tmp);
    items.swap(items_tmp);
  }
}

// Keys that sort ascending in *decreasing* score order, NaN after -inf: the order-preserving
// bit pattern of the score, complemented. Scores are read as double (exact for every dtype);
// -0.0 is folded into +0.0 so that signed zeros tie, as they compare equal.
inline uint64_t descending_score_key64(double s) {
  if (s != s) {
    return ~uint64_t(0);
  }
  if (s == 0.0) {
    s = 0.0;
  }
  uint64_t bits;
  std::memcpy(&bits, &s, sizeof(bits));
  const uint64_t ascending = (bits >> 63) ? ~bits : (bits | (uint64_t(1) << 63));
  return ~ascending;
}

// The same for scores that are exactly representable as float (float, half, bfloat16): half
// the key width, so fewer radix passes.
inline uint32_t descending_score_key32(float s) {
  if (s != s) {
    return ~uint32_t(0);
  }
  if (s == 0.0f) {
    s = 0.0f;
  }
  uint32_t bits;
  std::memcpy(&bits, &s, sizeof(bits));
  const uint32_t ascending = (bits >> 31) ? ~bits : (bits | (uint32_t(1) << 31));
  return ~ascending;
}

// Group ids (any int64) as unsigned keys in the same order.
inline uint64_t group_key(int64_t g) {
  return static_cast<uint64_t>(g) ^ (uint64_t(1) << 63);
}

}  // namespace frcnn_fast
