// The hot loops of csrc/cpu/roi_align_kernel.cpp, compiled once per instruction set (see
// cpu_isa.h): cpu_isa_copies.h includes this inside namespace `baseline`, and again inside
// `avx2` under `#pragma GCC target`. So: no include guard and no includes here (they are made at
// the top of the kernel file, outside any target region), and nothing that is not a loop.

#include "tile_loops.h"  // the same way: inside this copy's namespace

template <typename G>
struct SampleTable {
  std::vector<int64_t> offset;   // 4 per sample: cell y * W + x of each neighbour
  std::vector<G> weight;         // 4 per sample
  std::vector<int64_t> bin_end;  // samples of bin b: [bin_end[b-1], bin_end[b])
  std::vector<AxisSample<G>> ys, xs;
  G count = G(1);

  int64_t begin(int64_t bin) const { return bin == 0 ? 0 : bin_end[bin - 1]; }
};

// Samples of RoI `coords` (x1, y1, x2, y2) on a map of `lv`'s size. Invalid samples are left
// out (they contribute 0); `count` still includes them, as in torchvision.
template <typename G, typename scalar_t>
void build_table(
    const scalar_t* coords, const Level& lv, int64_t pooled_h, int64_t pooled_w,
    int64_t sampling_ratio, bool aligned, SampleTable<G>& t) {
  const AlignRoi<G> r = align_roi<G>(
      static_cast<G>(coords[0]), static_cast<G>(coords[1]), static_cast<G>(coords[2]),
      static_cast<G>(coords[3]), static_cast<G>(lv.scale), pooled_h, pooled_w, sampling_ratio,
      aligned);
  t.count = r.count;
  t.ys.resize(pooled_h * r.grid_h);
  t.xs.resize(pooled_w * r.grid_w);
  for (int64_t p = 0; p < pooled_h; ++p)
    for (int64_t i = 0; i < r.grid_h; ++i)
      t.ys[p * r.grid_h + i] =
          axis_sample(sample_coord(r.y_start, r.bin_h, p, i, r.grid_h), lv.height);
  for (int64_t p = 0; p < pooled_w; ++p)
    for (int64_t i = 0; i < r.grid_w; ++i)
      t.xs[p * r.grid_w + i] =
          axis_sample(sample_coord(r.x_start, r.bin_w, p, i, r.grid_w), lv.width);
  t.offset.clear();
  t.weight.clear();
  t.bin_end.resize(pooled_h * pooled_w);
  const int64_t w = lv.width;
  for (int64_t ph = 0; ph < pooled_h; ++ph) {
    for (int64_t pw = 0; pw < pooled_w; ++pw) {
      for (int64_t iy = 0; iy < r.grid_h; ++iy) {
        const AxisSample<G>& y = t.ys[ph * r.grid_h + iy];
        if (!y.valid) continue;
        for (int64_t ix = 0; ix < r.grid_w; ++ix) {
          const AxisSample<G>& x = t.xs[pw * r.grid_w + ix];
          if (!x.valid) continue;
          t.offset.insert(
              t.offset.end(),
              {y.low * w + x.low, y.low * w + x.high, y.high * w + x.low, y.high * w + x.high});
          t.weight.insert(
              t.weight.end(),
              {y.w_low * x.w_low, y.w_low * x.w_high, y.w_high * x.w_low, y.w_high * x.w_high});
        }
      }
      t.bin_end[ph * pooled_w + pw] = static_cast<int64_t>(t.offset.size() / 4);
    }
  }
}

// One bin of one RoI for every channel of a channels-last image, into out[0, c_n): the sums
// over the bin's samples divided by `count`, in either layout's order of operations (each
// that of its CUDA kernel): kGrouped (NCHW) adds each sample's weighted sum of its four
// neighbours, so an NCHW input pooled here gives the per-plane loop's bits; otherwise (NHWC)
// the neighbours are added one at a time. The loop over contiguous channels vectorises (a
// sample's weights are the same for every channel). A block of channels at a time, summed in
// a local array: GCC then vectorises the channel loop outright. Summing into the output
// itself, it fused two samples' iterations into one scalar loop (unroll-and-jam) and ran the
// NCHW forward at half the speed.
template <bool kGrouped, typename G, typename scalar_t, typename T>
inline void bin_sums(
    const scalar_t* image, int64_t c_n, const int64_t* off, const G* wt, int64_t s0, int64_t s1,
    G count, T* __restrict out) {
  constexpr int64_t kBlock = 64;
  for (int64_t c0 = 0; c0 < c_n; c0 += kBlock) {
    const int64_t len = c_n - c0 < kBlock ? c_n - c0 : kBlock;
    G acc[kBlock];
    for (int64_t c = 0; c < len; ++c) acc[c] = G(0);
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t* q = off + 4 * s;
      const G* w = wt + 4 * s;
      if constexpr (kGrouped) {
        const scalar_t* x0 = image + q[0] * c_n + c0;
        const scalar_t* x1 = image + q[1] * c_n + c0;
        const scalar_t* x2 = image + q[2] * c_n + c0;
        const scalar_t* x3 = image + q[3] * c_n + c0;
        const G w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
        for (int64_t c = 0; c < len; ++c) {
          acc[c] += w0 * static_cast<G>(x0[c]) + w1 * static_cast<G>(x1[c]) +
              w2 * static_cast<G>(x2[c]) + w3 * static_cast<G>(x3[c]);
        }
      } else {
        for (int j = 0; j < 4; ++j) {
          const scalar_t* x = image + q[j] * c_n + c0;
          const G wj = w[j];
          for (int64_t c = 0; c < len; ++c) acc[c] += wj * static_cast<G>(x[c]);
        }
      }
    }
    for (int64_t c = 0; c < len; ++c) out[c0 + c] = static_cast<T>(acc[c] / count);
  }
}

// `maps` are channels-last whatever the input's layout (an NCHW input is copied once: 10 MB
// for a VGG conv5 map, small next to the K*C*PH*PW output). `nchw_out`: the output is NCHW,
// each RoI's [bin][channel] results go through a cache-sized tile and are written transposed.
template <typename scalar_t>
void forward(
    const std::vector<const scalar_t*>& maps, const std::vector<Level>& levels_info,
    const scalar_t* boxes, const std::vector<int64_t>& batch_index,
    const std::vector<int64_t>& level_of, const RoiParams& g, scalar_t* out) {
  using G = at::opmath_type<scalar_t>;
  const int64_t k_total = static_cast<int64_t>(batch_index.size());
  const int64_t c_n = g.channels;
  const int64_t bins = g.bins();
  const bool nchw_out = !g.channels_last;
  parallel_for_work(k_total, forward_grain(c_n, bins), [&](int64_t k0, int64_t k1) {
    SampleTable<G> t;
    const int64_t ld = tile_stride<G>(c_n);
    std::vector<G> tile(nchw_out ? bins * ld : 0);
    for (int64_t k = k0; k < k1; ++k) {
      const int64_t l = level_of.empty() ? 0 : level_of[k];
      const Level& lv = levels_info[l];
      build_table(boxes + 5 * k + 1, lv, g.pooled_h, g.pooled_w, g.sampling_ratio, g.aligned, t);
      const int64_t plane = lv.height * lv.width;
      const scalar_t* image = maps[l] + batch_index[k] * c_n * plane;
      const int64_t* off = t.offset.data();
      const G* wt = t.weight.data();
      if (nchw_out) {
        for (int64_t b = 0; b < bins; ++b) {
          bin_sums<true>(
              image, c_n, off, wt, t.begin(b), t.bin_end[b], t.count, tile.data() + b * ld);
        }
        transpose_tile(tile.data(), ld, bins, c_n, out + k * c_n * bins);
      } else {
        for (int64_t b = 0; b < bins; ++b) {
          bin_sums<false>(
              image, c_n, off, wt, t.begin(b), t.bin_end[b], t.count, out + (k * bins + b) * c_n);
        }
      }
    }
  });
}

// grads[l] (accumulation type, zeroed, channels-last whatever the layout) += the RoIs'
// contributions. Each gradient cell sums its contributions in (RoI, bin, sample, neighbour)
// order in either layout, the order of the per-plane NCHW loop this replaced.
template <typename scalar_t>
void backward(
    const scalar_t* grad, const std::vector<at::opmath_type<scalar_t>*>& grads,
    const std::vector<Level>& levels_info, const scalar_t* boxes,
    const std::vector<int64_t>& batch_index, const std::vector<int64_t>& level_of,
    const RoiParams& g, bool grad_channels_last) {
  using G = at::opmath_type<scalar_t>;
  const int64_t c_n = g.channels;
  const int64_t bins = g.bins();
  const RoisByImage by_image = group_by_image(batch_index, g.batch_size);
  const int64_t block = channel_block(c_n, g.batch_size);
  const int64_t blocks = (c_n + block - 1) / block;
  const int64_t grain =
      backward_grain(static_cast<int64_t>(batch_index.size()), g.batch_size, bins, block);
  parallel_for_work(g.batch_size * blocks, grain, [&](int64_t t0, int64_t t1) {
    SampleTable<G> t;
    // One RoI's output gradient for the task's channels, [bin][channel], divided by the count.
    std::vector<G> gbin(bins * block);
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t n = task / blocks;
      const int64_t c0 = (task % blocks) * block;
      const int64_t c1 = c0 + block < c_n ? c0 + block : c_n;
      const int64_t width = c1 - c0;
      for (int64_t i = by_image.offsets[n]; i < by_image.offsets[n + 1]; ++i) {
        const int64_t k = by_image.order[i];
        const int64_t l = level_of.empty() ? 0 : level_of[k];
        const Level& lv = levels_info[l];
        build_table(boxes + 5 * k + 1, lv, g.pooled_h, g.pooled_w, g.sampling_ratio, g.aligned, t);
        const int64_t plane = lv.height * lv.width;
        G* image = grads[l] + n * c_n * plane;
        const int64_t* off = t.offset.data();
        const G* wt = t.weight.data();
        G* __restrict gb = gbin.data();
        if (grad_channels_last) {
          for (int64_t b = 0; b < bins; ++b) {
            const scalar_t* gk = grad + (k * bins + b) * c_n + c0;
            for (int64_t c = 0; c < width; ++c) gb[b * width + c] = static_cast<G>(gk[c]) / t.count;
          }
        } else {
          for (int64_t c = 0; c < width; ++c) {
            const scalar_t* gk = grad + (k * c_n + c0 + c) * bins;
            for (int64_t b = 0; b < bins; ++b) gb[b * width + c] = static_cast<G>(gk[b]) / t.count;
          }
        }
        for (int64_t b = 0; b < bins; ++b) {
          const G* __restrict gv = gb + b * width;
          for (int64_t s = t.begin(b); s < t.bin_end[b]; ++s) {
            for (int j = 0; j < 4; ++j) {
              G* __restrict x = image + off[4 * s + j] * c_n + c0;
              const G w = wt[4 * s + j];
              for (int64_t c = 0; c < width; ++c) x[c] += w * gv[c];
            }
          }
        }
      }
    }
  });
}
