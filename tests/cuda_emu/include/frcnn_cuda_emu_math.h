#pragma once
#include <cmath>
#include <type_traits>

// Device min/max: CUDA overloads them for mixed integer widths and maps the floating ones to
// fminf/fmaxf (a NaN operand loses), so plain std::min would differ on NaN.
namespace frcnn_emu {
template <bool kMax, typename A, typename B>
inline std::common_type_t<A, B> min_or_max(A a, B b) {
  using C = std::common_type_t<A, B>;
  const C x = static_cast<C>(a), y = static_cast<C>(b);
  if constexpr (std::is_floating_point<C>::value) {
    return kMax ? std::fmax(x, y) : std::fmin(x, y);
  } else {
    return (kMax ? x < y : y < x) ? y : x;
  }
}
}  // namespace frcnn_emu
template <typename A, typename B>
inline std::common_type_t<A, B> min(A a, B b) {
  return frcnn_emu::min_or_max<false>(a, b);
}
template <typename A, typename B>
inline std::common_type_t<A, B> max(A a, B b) {
  return frcnn_emu::min_or_max<true>(a, b);
}
