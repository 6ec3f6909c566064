// A per-RoI [bin][channel] tile written as NCHW [channel][bin] rows, shared by the RoI loops
// headers and, like them, compiled once per instruction set inside that set's namespace (no
// include guard, no includes: <immintrin.h> comes with the kernel file's headers).

// dst[c * rows + r] = src[r * ld + c] for r < rows, c < cols (`ld`: tile_stride). A copy: the
// same bits on either path.
template <typename T, typename U>
inline void transpose_tile(
    const T* __restrict src, int64_t ld, int64_t rows, int64_t cols, U* __restrict dst) {
  int64_t c0 = 0;
#if defined(FRCNN_FAST_AVX2_COPY)
  // float32: 8 x 8 blocks transposed in registers. The scalar loop below reads a column with
  // one load per element and runs at about a third of this.
  if constexpr (std::is_same_v<T, float> && std::is_same_v<U, float>) {
    for (; c0 + 8 <= cols; c0 += 8) {
      int64_t r0 = 0;
      for (; r0 + 8 <= rows; r0 += 8) {
        __m256 v[8], t[8];
        for (int i = 0; i < 8; ++i) v[i] = _mm256_loadu_ps(src + (r0 + i) * ld + c0);
        for (int i = 0; i < 8; i += 2) {
          t[i] = _mm256_unpacklo_ps(v[i], v[i + 1]);
          t[i + 1] = _mm256_unpackhi_ps(v[i], v[i + 1]);
        }
        for (int i = 0; i < 8; i += 4) {
          v[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
          v[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
          v[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
          v[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
        }
        // v[0..3] hold columns 0, 1, 2, 3 (and 4..7 in their high halves) of rows 0-3, v[4..7]
        // the same of rows 4-7.
        for (int i = 0; i < 4; ++i) {
          _mm256_storeu_ps(
              dst + (c0 + i) * rows + r0, _mm256_permute2f128_ps(v[i], v[i + 4], 0x20));
          _mm256_storeu_ps(
              dst + (c0 + i + 4) * rows + r0, _mm256_permute2f128_ps(v[i], v[i + 4], 0x31));
        }
      }
      for (int64_t c = c0; c < c0 + 8; ++c)
        for (int64_t r = r0; r < rows; ++r) dst[c * rows + r] = src[r * ld + c];
    }
  }
#endif
  for (int64_t c = c0; c < cols; ++c)
    for (int64_t r = 0; r < rows; ++r) dst[c * rows + r] = static_cast<U>(src[r * ld + c]);
}
