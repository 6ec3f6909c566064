"""RoI pooling / RoIAlign: CUDA kernels == CPU kernels on the same inputs.

Against the emulated CUDA build always, and the real device when a GPU is visible. Forward
results and the deterministic backward must equal the CPU to the bit in the emulation (same
sum order, no FMA contraction on either side); the atomic backward sums in a schedule-dependent
order, so it is compared with a tolerance. Each emulated comparison runs under several seeds,
worker counts and grid caps (1-3 blocks push the small inputs through every grid-stride loop).
"""

import cuda_emu
import numpy as np
import pytest
import torch
from helpers import CUDA_BACKENDS, DTYPES, HAS_CUDA, dtype_id
from roi_helpers import deterministic_algorithms

import frcnn_fast  # noqa: F401  (loads _C)

# (seed, workers, max_grid_dim)
SCHEDULES = ((21, 2, 65535), (22, 1, 1), (23, 2, 2), (24, 2, 3))
LAYOUTS = ("contiguous", "channels_last")
ops = torch.ops.frcnn_fast


def _case(seed, dtype, layout, n=2, c=3, h=9, w=11):
    """A small map and RoIs of every kind: inside, partly and fully outside, tiny (many bins per
    cell), inverted, one with a non-finite coordinate, several on the same image."""
    rng = np.random.default_rng(seed)
    x = torch.as_tensor(rng.normal(size=(n, c, h, w))).to(dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    k = 14
    xy = rng.uniform(-6, 2 * w, size=(k, 2))
    wh = rng.uniform(0.1, 2 * w, size=(k, 2))
    wh[:3] = rng.uniform(0.05, 1.5, size=(3, 2))  # smaller than a cell
    wh[3] = -2.0  # inverted
    rois = np.concatenate([rng.integers(0, n, (k, 1)), xy, xy + wh], 1)
    rois[4, 2] = np.nan if seed % 2 else np.inf
    if seed % 3 == 0:  # a tie of values: argmax must pick the same (first) cell
        x[:, :, 2:5, 3:6] = 1.5
    return x, torch.as_tensor(rois).to(dtype)


def _emulated(fn, *args, same_bits=True):
    """fn(*args) on the emulated CUDA kernels under every schedule; the results must agree bit
    for bit across schedules when same_bits (nothing may depend on the interleaving)."""
    results = []
    for seed, workers, cap in SCHEDULES:
        with cuda_emu.emulated(seed=seed, workers=workers, max_grid_dim=cap):
            results.append(fn(*args))
    if same_bits:
        for other in results[1:]:
            for a, b in zip(_flat(results[0]), _flat(other)):
                torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
    return results[0]


def _flat(r):
    return list(r) if isinstance(r, (tuple, list)) else [r]


def _run(backend, fn, *args, same_bits=True):
    if backend == "cuda":
        out = fn(
            *(
                a.cuda()
                if isinstance(a, torch.Tensor)
                else [t.cuda() for t in a]
                if isinstance(a, list)
                else a
                for a in args
            )
        )
        return [t.cpu() for t in out] if isinstance(out, (tuple, list)) else out.cpu()
    return _emulated(fn, *args, same_bits=same_bits)


def _identical(cpu, cuda, backend, tol=None):
    """Emulated: the same bits. Real GPU: the same bits are expected too (nvcc -fmad=false), but
    the test allows a few ulps of the accumulation type so a libdevice rounding difference
    reports clearly rather than as a flaky bit mismatch."""
    assert cuda.dtype == cpu.dtype and cuda.shape == cpu.shape
    if backend == "cuda_emu":
        torch.testing.assert_close(cuda, cpu, rtol=0, atol=0, equal_nan=True)
    else:
        torch.testing.assert_close(
            cuda, cpu, **(tol or {"rtol": 1e-5, "atol": 1e-6}), equal_nan=True
        )


def _grad_tol(dtype, g, terms):
    """Tolerance of an atomically summed gradient: reordering `terms` additions of |g|-sized
    values in the accumulation type, plus the final rounding of half types."""
    acc_eps = torch.finfo(torch.float64 if dtype == torch.float64 else torch.float32).eps
    out_eps = torch.finfo(dtype).eps
    scale = float(g.abs().max()) * terms
    return {"rtol": 2 * out_eps, "atol": 4 * acc_eps * scale + out_eps}


@pytest.mark.parametrize("backend", CUDA_BACKENDS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roi_pool_cuda_matches_cpu(backend, dtype, layout, seed):
    x, rois = _case(seed, dtype, layout)
    n, c, h, w = x.shape
    cl = layout == "channels_last"
    out, arg = ops.roi_pool(x, rois, 0.5, 2, 3, False)
    cout, carg = _run(backend, lambda *a: ops.roi_pool(*a, 0.5, 2, 3, False), x, rois)
    _identical(out, cout, backend, {"rtol": 0, "atol": 0})
    assert torch.equal(arg, carg)
    assert cout.is_contiguous(memory_format=torch.channels_last if cl else torch.contiguous_format)

    g = torch.as_tensor(np.random.default_rng(seed + 7).normal(size=out.shape)).to(dtype)
    g = g.contiguous(memory_format=torch.channels_last) if cl else g
    expected = ops._roi_pool_backward(g, rois, arg, n, c, h, w, cl, True)
    det = _run(backend, lambda *a: ops._roi_pool_backward(*a, n, c, h, w, cl, True), g, rois, arg)
    _identical(expected, det, backend, {"rtol": 0, "atol": 0})
    atomic = _run(
        backend,
        lambda *a: ops._roi_pool_backward(*a, n, c, h, w, cl, False),
        g,
        rois,
        arg,
        same_bits=False,
    )
    torch.testing.assert_close(atomic, expected, **_grad_tol(dtype, g, len(rois) * 6))


@pytest.mark.parametrize("backend", CUDA_BACKENDS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "seed,sampling,aligned",
    [(0, -1, False), (1, 2, True), (2, 0, True), (3, 1, False), (4, 3, False)],
)
def test_roi_align_cuda_matches_cpu(backend, dtype, layout, seed, sampling, aligned):
    x, rois = _case(seed, dtype, layout)
    n, c, h, w = x.shape
    cl = layout == "channels_last"
    args = (0.75, 2, 3, sampling, aligned)
    out = ops.roi_align(x, rois, *args, False)
    cout = _run(backend, lambda *a: ops.roi_align(*a, *args, False), x, rois)
    _identical(out, cout, backend)

    g = torch.as_tensor(np.random.default_rng(seed + 7).normal(size=out.shape)).to(dtype)
    g = g.contiguous(memory_format=torch.channels_last) if cl else g
    bwd = lambda det: (
        lambda *a: ops._roi_align_backward(*a, 0.75, 2, 3, n, c, h, w, sampling, aligned, cl, det)
    )  # noqa: E731
    expected = bwd(True)(g, rois)
    det = _run(backend, bwd(True), g, rois)
    _identical(expected, det, backend)
    atomic = _run(backend, bwd(False), g, rois, same_bits=False)
    torch.testing.assert_close(atomic, expected, **_grad_tol(dtype, g, len(rois) * 6 * 4))
    assert expected.abs().sum() > 0  # the comparison is not vacuous


@pytest.mark.parametrize("backend", CUDA_BACKENDS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=dtype_id)
def test_multilevel_roi_align_cuda_matches_cpu(backend, dtype, layout):
    x, rois = _case(5, dtype, layout, h=12, w=10)
    n, c, h, w = x.shape
    cl = layout == "channels_last"
    small = x[:, :, ::2, ::2].contiguous(
        memory_format=torch.channels_last if cl else torch.contiguous_format
    )
    tiny = x[:, :, ::4, ::3].contiguous(
        memory_format=torch.channels_last if cl else torch.contiguous_format
    )
    maps = [x, small, tiny]
    levels = torch.as_tensor(np.random.default_rng(3).integers(0, 3, len(rois)))
    scales = [1.0, 0.5, 0.25]
    out = ops.multilevel_roi_align(maps, rois, levels, scales, 3, 2, 2, True, False)
    cout = _run(
        backend,
        lambda m, r, lv: ops.multilevel_roi_align(m, r, lv, scales, 3, 2, 2, True, False),
        maps,
        rois,
        levels,
    )
    _identical(out, cout, backend)

    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    g = g.contiguous(memory_format=torch.channels_last) if cl else g
    hs, ws = [m.shape[2] for m in maps], [m.shape[3] for m in maps]
    bwd = lambda det: (
        lambda gg, r, lv: ops._multilevel_roi_align_backward(
            gg, r, lv, scales, 3, 2, n, c, hs, ws, 2, True, cl, det
        )
    )  # noqa: E731
    expected = bwd(True)(g, rois, levels)
    det = _run(backend, bwd(True), g, rois, levels)
    atomic = _run(backend, bwd(False), g, rois, levels, same_bits=False)
    for e, d, a in zip(expected, det, atomic):
        _identical(e, d, backend)
        torch.testing.assert_close(a, e, **_grad_tol(dtype, g, len(rois) * 6 * 4))


def _contended(device, layout="contiguous"):
    """Many RoIs over one small map: every cell receives gradient from many RoIs and bins."""
    rng = np.random.default_rng(5)
    x = torch.as_tensor(rng.normal(size=(2, 4, 10, 10)), dtype=torch.float32)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    xy = rng.uniform(-2, 8, size=(40, 2))
    rois = np.concatenate([rng.integers(0, 2, (40, 1)), xy, xy + rng.uniform(0.5, 9, (40, 2))], 1)
    return x.to(device), torch.as_tensor(rois, dtype=torch.float32, device=device)


@pytest.mark.cuda_emu
@pytest.mark.parametrize("layout", LAYOUTS)
def test_deterministic_backward_same_bits_under_every_schedule(layout):
    """The deterministic backward kernels give the same bits for every emulator seed, worker
    count and grid cap (1 block = every plane through the grid-stride loop), through autograd
    with the flag and with torch.use_deterministic_algorithms."""
    x, rois = _contended("cpu", layout)
    g = torch.randn(40, 4, 7, 7, generator=torch.Generator().manual_seed(0))

    def grads(det):
        xa = x.clone().requires_grad_()
        xp = x.clone().requires_grad_()
        a = frcnn_fast.roi_align(xa, rois, 7, 1.0, 2, True, deterministic=det)
        p = frcnn_fast.roi_pool(xp, rois, 7, 1.0, deterministic=det)
        return torch.autograd.grad([a, p], [xa, xp], [g, g])

    settings = [(s, wk, cap) for s in (1, 2, 3) for wk in (1, 2) for cap in (1, 2, 65535)]
    results = []
    for seed, workers, cap in settings:
        with cuda_emu.emulated(seed=seed, workers=workers, max_grid_dim=cap):
            results.append(grads(True))
    with deterministic_algorithms(), cuda_emu.emulated(seed=9, workers=2, max_grid_dim=2):
        results.append(grads(None))
    first = results[0]
    assert first[0].abs().sum() > 0 and first[1].abs().sum() > 0
    for other in results[1:]:
        for a, b in zip(first, other):
            assert torch.equal(a, b)
    # ... and they are the CPU kernels' bits.
    cpu = grads(True)
    for a, b in zip(first, cpu):
        assert torch.equal(a, b)


@pytest.mark.cuda_emu
def test_cuda_rejects_bad_batch_index_levels_and_argmax():
    """A bad index is a clear error before any kernel reads through it."""
    x = torch.randn(2, 3, 8, 8)
    bad = torch.tensor([[2.0, 0, 0, 4, 4]])
    frac = torch.tensor([[0.5, 0, 0, 4, 4]])
    nan = torch.tensor([[float("nan"), 0, 0, 4, 4]])
    ok = torch.tensor([[1.0, 0, 0, 4, 4]])
    with cuda_emu.emulated(seed=0):
        for b in (bad, frac, nan):
            with pytest.raises(RuntimeError, match="batch index"):
                ops.roi_align(x, b, 1.0, 2, 2, -1, False, False)
            with pytest.raises(RuntimeError, match="batch index"):
                ops.roi_pool(x, b, 1.0, 2, 2, False)
            with pytest.raises(RuntimeError, match="batch index"):
                ops._roi_align_backward(
                    torch.ones(1, 3, 2, 2), b, 1.0, 2, 2, 2, 3, 8, 8, -1, False, False, True
                )
        with pytest.raises(RuntimeError, match="levels"):
            ops.multilevel_roi_align(
                [x, x], ok, torch.tensor([2]), [1.0, 0.5], 2, 2, -1, False, False
            )
        for det in (False, True):
            with pytest.raises(RuntimeError, match="argmax"):
                ops._roi_pool_backward(
                    torch.ones(1, 3, 1, 1), ok, torch.full((1, 3, 1, 1), 64), 2, 3, 8, 8, False, det
                )


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="no GPU")
@pytest.mark.parametrize("layout", LAYOUTS)
def test_real_cuda_deterministic_backward_repeats_bits(layout):
    """On the GPU: the deterministic backward gives the same bits on every run (the atomic one
    need not), and both match the CPU."""
    x, rois = _contended("cuda", layout)
    g = torch.randn(40, 4, 7, 7, device="cuda")
    cl = layout == "channels_last"
    n, c, h, w = x.shape
    _, arg = ops.roi_pool(x, rois, 1.0, 7, 7, False)
    gl = g.contiguous(memory_format=torch.channels_last) if cl else g
    for det in (True, False):
        align = [
            ops._roi_align_backward(gl, rois, 1.0, 7, 7, n, c, h, w, 2, True, cl, det)
            for _ in range(5)
        ]
        pool = [ops._roi_pool_backward(gl, rois, arg, n, c, h, w, cl, det) for _ in range(5)]
        cpu_align = ops._roi_align_backward(
            gl.cpu(), rois.cpu(), 1.0, 7, 7, n, c, h, w, 2, True, cl, True
        )
        cpu_pool = ops._roi_pool_backward(gl.cpu(), rois.cpu(), arg.cpu(), n, c, h, w, cl, True)
        torch.testing.assert_close(align[0].cpu(), cpu_align, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(pool[0].cpu(), cpu_pool, rtol=1e-5, atol=1e-5)
        if det:
            for a in align[1:]:
                assert torch.equal(a, align[0])
            for p in pool[1:]:
                assert torch.equal(p, pool[0])
