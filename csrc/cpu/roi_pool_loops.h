// The hot loops of csrc/cpu/roi_pool_kernel.cpp, compiled once per instruction set (see
// cpu_isa.h): cpu_isa_copies.h includes this inside namespace `baseline`, and again inside
// `avx2` under `#pragma GCC target`. So: no include guard and no includes here (they are made at
// the top of the kernel file, outside any target region), and nothing that is not a loop.

#include "tile_loops.h"  // the same way: inside this copy's namespace

struct Bin {
  int64_t h0, h1, w0, w1;
};

// Cell ranges of every bin of RoI `coords`; a RoI with a non-finite coordinate gets empty bins.
template <typename G, typename scalar_t>
void pool_bins(
    const scalar_t* coords, double scale, int64_t pooled_h, int64_t pooled_w, int64_t height,
    int64_t width, std::vector<Bin>& bins) {
  const PoolRoi r = pool_roi<G>(
      static_cast<G>(coords[0]), static_cast<G>(coords[1]), static_cast<G>(coords[2]),
      static_cast<G>(coords[3]), static_cast<G>(scale));
  bins.resize(pooled_h * pooled_w);
  for (int64_t ph = 0; ph < pooled_h; ++ph) {
    const CellRange y = pool_bin<G>(ph, pooled_h, r.y_start, r.height, height);
    for (int64_t pw = 0; pw < pooled_w; ++pw) {
      const CellRange x = pool_bin<G>(pw, pooled_w, r.x_start, r.width, width);
      bins[ph * pooled_w + pw] = r.valid ? Bin{y.begin, y.end, x.begin, x.end} : Bin{0, 0, 0, 0};
    }
  }
}

// The max of one bin over `len` channels of a channels-last image (`x0`: the bin's first
// channel at cell 0; `c_n`: the cell stride), into m[0, len) and, with kArgmax, the first cell
// holding it into a[0, len). The forward and the recomputing backward both run this, so they
// compare the same values in the same order and agree on every argmax, ties included. The loop
// over contiguous channels vectorises: the cell index is kept as Index (int32 whenever H*W
// fits), so the compare mask of the float values selects it directly, lane for lane; an int64
// index would need widening and keeps GCC from vectorising on baseline x86-64.
template <typename scalar_t, typename G, typename Index, bool kArgmax>
inline void bin_max(
    const scalar_t* x0, int64_t c_n, const Bin& bin, int64_t width, int64_t len, G* __restrict m,
    Index* __restrict a) {
  // Start of every max, as in Caffe/torchvision: a bin whose values are all NaN or -inf
  // reports this value with argmax -1 (and so passes no gradient).
  const G lowest = std::numeric_limits<G>::lowest();
  const bool empty = bin.h1 <= bin.h0 || bin.w1 <= bin.w0;
  for (int64_t c = 0; c < len; ++c) {
    m[c] = empty ? G(0) : lowest;
    if constexpr (kArgmax) a[c] = Index(-1);
  }
  for (int64_t h = bin.h0; h < bin.h1; ++h) {
    for (int64_t w = bin.w0; w < bin.w1; ++w) {
      const scalar_t* __restrict x = x0 + (h * width + w) * c_n;
      const Index cell = static_cast<Index>(h * width + w);
      for (int64_t c = 0; c < len; ++c) {
        // Written as a bit mask, not `more ? cell : a[c]`: GCC if-converts (vectorises) only
        // this form. NaN compares false, so it never replaces the max.
        const G v = static_cast<G>(x[c]);
        const G mc = m[c];
        m[c] = v > mc ? v : mc;
        if constexpr (kArgmax) {
          const Index mask = -static_cast<Index>(v > mc);
          a[c] = static_cast<Index>((cell & mask) | (a[c] & ~mask));
        }
      }
    }
  }
}

// Forward over a channels-last (NHWC) image: for each bin, a running max per channel over the
// bin's cells (bin_max). Output is written NHWC, or NCHW (`nchw_out`) through a per-RoI
// transpose buffer, so an NCHW input runs this kernel on a one-off channels-last copy. Without
// kArgmax (inference, and the forward of a CPU backward that recomputes) no cell index is
// tracked or stored; the max is the same.
template <typename scalar_t, typename Index, bool kArgmax>
void forward_nhwc(
    const scalar_t* input, const scalar_t* boxes, const std::vector<int64_t>& batch_index,
    const RoiParams& p, bool nchw_out, scalar_t* out, int64_t* argmax) {
  using G = at::opmath_type<scalar_t>;
  const int64_t c_n = p.channels, height = p.height, width = p.width;
  const int64_t bins_n = p.bins();
  const int64_t plane = height * width;
  const int64_t k_total = static_cast<int64_t>(batch_index.size());
  parallel_for_work(k_total, forward_grain(c_n, bins_n), [&](int64_t k0, int64_t k1) {
    std::vector<Bin> bins;
    std::vector<G> best(c_n);
    std::vector<Index> where(kArgmax ? c_n : 0);
    // NCHW output: one RoI's results [bin][channel], transposed when the RoI is done.
    const int64_t out_ld = tile_stride<scalar_t>(c_n), arg_ld = tile_stride<int64_t>(c_n);
    std::vector<scalar_t> out_t(nchw_out ? bins_n * out_ld : 0);
    std::vector<int64_t> arg_t(nchw_out && kArgmax ? bins_n * arg_ld : 0);
    for (int64_t k = k0; k < k1; ++k) {
      pool_bins<G>(boxes + 5 * k + 1, p.spatial_scale, p.pooled_h, p.pooled_w, height, width, bins);
      const scalar_t* image = input + batch_index[k] * c_n * plane;
      G* __restrict m = best.data();
      Index* __restrict a = where.data();
      for (int64_t b = 0; b < bins_n; ++b) {
        bin_max<scalar_t, G, Index, kArgmax>(image, c_n, bins[b], width, c_n, m, a);
        scalar_t* __restrict o =
            nchw_out ? out_t.data() + b * out_ld : out + (k * bins_n + b) * c_n;
        for (int64_t c = 0; c < c_n; ++c) o[c] = static_cast<scalar_t>(m[c]);
        if constexpr (kArgmax) {
          int64_t* __restrict am =
              nchw_out ? arg_t.data() + b * arg_ld : argmax + (k * bins_n + b) * c_n;
          for (int64_t c = 0; c < c_n; ++c) am[c] = static_cast<int64_t>(a[c]);
        }
      }
      if (nchw_out) {
        transpose_tile(out_t.data(), out_ld, bins_n, c_n, out + k * c_n * bins_n);
        if constexpr (kArgmax) {
          transpose_tile(arg_t.data(), arg_ld, bins_n, c_n, argmax + k * c_n * bins_n);
        }
      }
    }
  });
}

// Backward: every bin's gradient goes to its argmax cell. A task owns one image's gradient
// planes for a block of channels and visits the image's RoIs in index order, bin by bin, so
// each cell sums its contributions in (RoI index, bin) order: the same bits for any split.
// RoI outer: a RoI's [block, bins] slice of argmax and gradient is one contiguous run (NCHW) or
// `bins` runs of `block` (NHWC), read streaming (see streaming_channel_block).
template <typename scalar_t>
void backward(
    const scalar_t* grad, const GradStrides& gs, const int64_t* argmax,
    const std::vector<int64_t>& batch_index, const RoiParams& p,
    at::opmath_type<scalar_t>* grad_input) {
  using G = at::opmath_type<scalar_t>;
  const int64_t batch_size = p.batch_size, c_n = p.channels;
  const int64_t plane = p.height * p.width, bins_n = p.bins();
  const bool channels_last = p.channels_last;
  const RoisByImage by_image = group_by_image(batch_index, batch_size);
  const int64_t block = streaming_channel_block(c_n, batch_size);
  const int64_t blocks = (c_n + block - 1) / block;
  const int64_t grain =
      backward_grain(static_cast<int64_t>(batch_index.size()), batch_size, bins_n, block);
  // argmax is an input of this op: checked rather than trusted.
  const auto check_cell = [plane](int64_t a) {
    TORCH_CHECK(a < plane, "argmax must be -1 or in [0, H*W) = [0, ", plane, "), got ", a);
  };
  parallel_for_work(batch_size * blocks, grain, [&](int64_t t0, int64_t t1) {
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t n = task / blocks;
      const int64_t c0 = (task % blocks) * block;
      const int64_t c1 = c0 + block < c_n ? c0 + block : c_n;
      G* image = grad_input + n * c_n * plane;
      for (int64_t i = by_image.offsets[n]; i < by_image.offsets[n + 1]; ++i) {
        const int64_t k = by_image.order[i];
        const scalar_t* gk = grad + k * gs.roi;
        if (!channels_last) {
          for (int64_t c = c0; c < c1; ++c) {
            G* __restrict x = image + c * plane;
            const int64_t* __restrict am = argmax + (k * c_n + c) * bins_n;
            const scalar_t* __restrict gc = gk + c * gs.channel;
            for (int64_t b = 0; b < bins_n; ++b) {
              const int64_t a = am[b];
              if (a < 0) continue;
              check_cell(a);
              x[a] += static_cast<G>(gc[b * gs.bin]);
            }
          }
          continue;
        }
        for (int64_t b = 0; b < bins_n; ++b) {
          const int64_t* __restrict am = argmax + (k * bins_n + b) * c_n;
          const scalar_t* __restrict gb = gk + b * gs.bin;
          for (int64_t c = c0; c < c1; ++c) {
            const int64_t a = am[c];
            if (a < 0) continue;
            check_cell(a);
            image[a * c_n + c] += static_cast<G>(gb[c * gs.channel]);
          }
        }
      }
    }
  });
}

// Backward without a stored argmax: each task recomputes the argmax of its RoIs' bins for its
// channel block from the (channels-last) input with the forward's bin_max, then adds each
// bin's gradient at that cell. The forward then writes no int64 argmax (as large as the
// output, twice its bytes in float32) and the backward reads none: recomputing a bin's max
// costs less than streaming its argmax in, for the few cells of a bin. Same tasks and the same
// (RoI index, bin) order per cell as `backward`, and the same argmax: the same bits. The sums
// go to a channels-last map whatever the layout (a bin's adds then touch a few cells' runs of
// contiguous channels, where NCHW planes would put each channel's add on its own cache line);
// an NCHW gradient is read through a per-RoI transpose buffer for the same reason.
template <typename scalar_t, typename Index>
void backward_recompute(
    const scalar_t* input, const scalar_t* boxes, const scalar_t* grad, const GradStrides& gs,
    const std::vector<int64_t>& batch_index, const RoiParams& p,
    at::opmath_type<scalar_t>* grad_input) {
  using G = at::opmath_type<scalar_t>;
  const int64_t batch_size = p.batch_size, c_n = p.channels;
  const int64_t height = p.height, width = p.width, plane = height * width;
  const int64_t bins_n = p.bins();
  const RoisByImage by_image = group_by_image(batch_index, batch_size);
  const int64_t block = streaming_channel_block(c_n, batch_size);
  const int64_t blocks = (c_n + block - 1) / block;
  const int64_t grain =
      backward_grain(static_cast<int64_t>(batch_index.size()), batch_size, bins_n, block);
  // An NCHW gradient ([channel][bin] per RoI); otherwise channels-last, gs.channel == 1.
  const bool transpose_grad = gs.bin == 1;
  parallel_for_work(batch_size * blocks, grain, [&](int64_t t0, int64_t t1) {
    std::vector<Bin> bins;
    std::vector<G> best(block);
    std::vector<Index> where(block);
    std::vector<scalar_t> grad_t(transpose_grad ? bins_n * block : 0);  // [bin][channel]
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t n = task / blocks;
      const int64_t c0 = (task % blocks) * block;
      const int64_t len = std::min(block, c_n - c0);
      const scalar_t* image = input + n * c_n * plane + c0;
      G* acc = grad_input + n * c_n * plane + c0;
      for (int64_t i = by_image.offsets[n]; i < by_image.offsets[n + 1]; ++i) {
        const int64_t k = by_image.order[i];
        pool_bins<G>(
            boxes + 5 * k + 1, p.spatial_scale, p.pooled_h, p.pooled_w, height, width, bins);
        const scalar_t* gk = grad + k * gs.roi + c0 * gs.channel;
        if (transpose_grad) {
          for (int64_t c = 0; c < len; ++c) {
            for (int64_t b = 0; b < bins_n; ++b) grad_t[b * len + c] = gk[c * gs.channel + b];
          }
        }
        for (int64_t b = 0; b < bins_n; ++b) {
          bin_max<scalar_t, G, Index, true>(
              image, c_n, bins[b], width, len, best.data(), where.data());
          // The bin's gradient for the block, contiguous: transposed, or channels-last as given.
          const scalar_t* __restrict gb =
              transpose_grad ? grad_t.data() + b * len : gk + b * gs.bin;
          for (int64_t c = 0; c < len; ++c) {
            const int64_t a = static_cast<int64_t>(where[c]);
            if (a >= 0) acc[a * c_n + c] += static_cast<G>(gb[c]);
          }
        }
      }
    }
  });
}
