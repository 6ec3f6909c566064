"""The CPU RoI kernels' loops are compiled once per instruction set (csrc/cpu/cpu_isa.h): the
build's baseline and, on x86-64, AVX2, picked at the first call. The rest of the suite checks
whichever set this machine runs against the reference and the CUDA kernels; here every set must
give the same bits as every other, on the inputs where a slip would show: channel counts that
leave vector tails, 7x7 tiles (the NCHW transpose's 8x8 blocks and their remainder), tie-heavy
ReLU maps, NaN and -inf, both layouts, every dtype, one and two threads."""

import os
import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pytest
import torch
import torchvision
from helpers import ALL_DTYPES, TIE_MAP_KINDS, dtype_id, integer_grads, tie_maps, tie_rois
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import frcnn_fast
from frcnn_fast import _C

SUPPORTED = frcnn_fast.build_info()["cpu_isas"]


@contextmanager
def cpu_isa(name):
    previous = _C._set_cpu_isa(name)
    try:
        yield
    finally:
        _C._set_cpu_isa(previous)


def test_build_info_names_the_chosen_set():
    info = frcnn_fast.build_info()
    assert info["cpu_isa"] in info["cpu_isas"]
    assert info["cpu_isas"][0] == "baseline"
    if os.environ.get("FRCNN_FAST_CPU_ISA"):
        assert info["cpu_isa"] == os.environ["FRCNN_FAST_CPU_ISA"]
    else:
        assert info["cpu_isa"] == info["cpu_isas"][-1], "the best set is the default"


def test_x86_64_with_avx2_runs_the_avx2_loops():
    # Where the processor has AVX2 the build must have compiled those loops: a build that
    # silently lost them would pass every other test, only slower.
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    if os.uname().machine != "x86_64" or " avx2" not in flags:
        pytest.skip("not an x86-64 processor with AVX2")
    assert "avx2" in SUPPORTED


def test_switching_sets_reports_the_previous_one():
    with cpu_isa("baseline"):
        assert _C.cpu_isa()[0] == "baseline"
        assert _C._set_cpu_isa("baseline") == "baseline"
    assert _C.cpu_isa()[0] == frcnn_fast.build_info()["cpu_isa"]


@pytest.mark.parametrize("name", ["sse9", "", "AVX2"])
def test_unknown_set_is_an_error_naming_the_choices(name):
    with pytest.raises(ValueError, match=r"must be one of baseline, avx2, got '") as err:
        _C._set_cpu_isa(name)
    assert "Exception raised from" not in str(err.value), "the message, not the C++ stack"


def _run_child(env_value, code):
    env = dict(os.environ, FRCNN_FAST_CPU_ISA=env_value)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_environment_variable_pins_the_set():
    child = _run_child("baseline", "import frcnn_fast; print(frcnn_fast.build_info()['cpu_isa'])")
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "baseline"


def test_bad_environment_variable_fails_loudly():
    child = _run_child("avx9000", "import frcnn_fast; frcnn_fast.build_info()")
    assert child.returncode != 0
    assert "FRCNN_FAST_CPU_ISA must be one of baseline, avx2, got 'avx9000'" in child.stderr
    assert "Exception raised from" not in child.stderr


# --------------------------------------------------------------------------------------------
# every set, the same bits
# --------------------------------------------------------------------------------------------
# Channels: below, at and around the vector widths (4 and 8 floats, 2 and 4 doubles), and the
# 8x8 transpose blocks with a tail. Pooled sizes: 7x7 (49 rows: six blocks and one row over),
# a square of exactly 8 rows... and a single bin.
CHANNELS = st.sampled_from([1, 3, 8, 13, 16, 24, 33])
POOLED = st.sampled_from([(7, 7), (2, 4), (4, 4), (1, 1), (3, 5)])
RAW_KINDS = ("normal", "nan_inf")


@st.composite
def roi_cases(draw):
    c = draw(CHANNELS)
    kind = draw(st.sampled_from(TIE_MAP_KINDS + RAW_KINDS))
    if kind in RAW_KINDS:
        n, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 12)), draw(st.integers(1, 12))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        x = rng.normal(size=(n, c, h, w))
        if kind == "nan_inf":
            x[rng.random(x.shape) < 0.1] = np.nan
            x[rng.random(x.shape) < 0.1] = -np.inf
    else:
        x = draw(tie_maps(max_c=1, kinds=(kind,)))
        x = np.repeat(x, c, axis=1) + np.arange(c).reshape(1, c, 1, 1) % 3 / 4.0
    n, _, h, w = x.shape
    scale = draw(st.sampled_from([1.0, 0.5]))
    rois = draw(tie_rois(n, h, w, scale, max_k=6))
    return {
        "x": x,
        "rois": rois,
        "scale": scale,
        "pooled": draw(POOLED),
        "layout": draw(st.sampled_from(["nchw", "nhwc"])),
        "threads": draw(st.sampled_from([1, 2])),
        "seed": draw(st.integers(0, 2**16)),
    }


def x_format(x):
    if x.is_contiguous():
        return torch.contiguous_format
    return torch.channels_last


def _inputs(case, dtype):
    x = torch.tensor(case["x"], dtype=dtype)
    if case["layout"] == "nhwc":
        x = x.contiguous(memory_format=torch.channels_last)
    rois = torch.tensor(case["rois"], dtype=dtype)
    return x, rois


def _all_results(case, dtype):
    """Every RoI kernel entry on one case: forward outputs and input gradients, each through
    the public wrappers (which pick the CPU paths a user gets) and the stored-argmax ops."""
    x, rois = _inputs(case, dtype)
    ph, pw = case["pooled"]
    scale = case["scale"]
    grad = torch.tensor(
        integer_grads(np.random.default_rng(case["seed"]), (rois.shape[0], x.shape[1], ph, pw)),
        dtype=dtype,
    )
    out = {}
    torch.set_num_threads(case["threads"])
    ops = torch.ops.frcnn_fast
    pooled, argmax = ops.roi_pool(x, rois, scale, ph, pw, True)
    out["roi_pool"], out["roi_pool.argmax"] = pooled, argmax
    n, c, h, w = x.shape
    channels_last = case["layout"] == "nhwc"
    out["roi_pool.backward"] = ops._roi_pool_backward(
        grad, rois, argmax, n, c, h, w, channels_last, True
    )
    out["roi_pool_inference"] = ops.roi_pool_inference(x, rois, scale, ph, pw)
    out["roi_pool.recompute"] = ops._roi_pool_backward_recompute(grad, x, rois, scale)
    for sampling, aligned in ((2, False), (0, True)):
        key = f"roi_align.s{sampling}.{'aligned' if aligned else 'legacy'}"
        xg = x.detach().clone().requires_grad_(True)
        y = frcnn_fast.roi_align(xg, rois, (ph, pw), scale, sampling, aligned)
        (gx,) = torch.autograd.grad(y, xg, grad)
        out[key], out[key + ".backward"] = y, gx
    # Two levels: the multi-level op (the FPN pooler's) with RoIs split between them.
    levels = torch.arange(rois.shape[0]) % 2
    maps = [x, x[:, :, ::2, ::2].contiguous(memory_format=x_format(x))]
    y = ops.multilevel_roi_align(maps, rois, levels, [scale, scale / 2], ph, pw, 2, True, True)
    out["multilevel_roi_align"] = y
    out["multilevel_roi_align.backward"] = ops._multilevel_roi_align_backward(
        grad,
        rois,
        levels,
        [scale, scale / 2],
        ph,
        pw,
        n,
        c,
        [m.shape[2] for m in maps],
        [m.shape[3] for m in maps],
        2,
        True,
        channels_last,
        True,
    )
    return out


def _bits(t):
    """The raw bits (signed zeros included), every NaN as one canonical NaN: which NaN an add
    returns when both operands are NaN follows the operand order, which the compiler may swap
    between a vector and a scalar loop of the same source."""
    t = t.contiguous()
    if t.is_floating_point():
        t = torch.where(t.isnan(), torch.full_like(t, float("nan")), t)
    if t.dtype in (torch.float16, torch.bfloat16):
        return t.view(torch.int16)
    if t.dtype == torch.float32:
        return t.view(torch.int32)
    if t.dtype == torch.float64:
        return t.view(torch.int64)
    return t


def _flatten(results):
    flat = {}
    for key, value in results.items():
        if isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                flat[f"{key}[{i}]"] = v
        else:
            flat[key] = value
    return flat


def _first_difference(got, expected):
    where = (_bits(got) != _bits(expected)).nonzero()
    if where.numel() == 0:
        return "no element differs"
    i = tuple(where[0].tolist())
    return f"{where.shape[0]} elements differ, first at {i}: {got[i].item()!r} vs {expected[i].item()!r}"


@pytest.mark.skipif(len(SUPPORTED) < 2, reason="this processor runs the baseline loops only")
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=dtype_id)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=roi_cases())
def test_every_set_gives_the_same_bits(case, dtype):
    threads = torch.get_num_threads()
    try:
        per_isa = {}
        for name in SUPPORTED:
            with cpu_isa(name):
                per_isa[name] = _flatten(_all_results(case, dtype))
    finally:
        torch.set_num_threads(threads)
    base = per_isa[SUPPORTED[0]]
    for name in SUPPORTED[1:]:
        for key, expected in base.items():
            got = per_isa[name][key]
            assert got.shape == expected.shape and got.stride() == expected.stride(), key
            assert torch.equal(_bits(got), _bits(expected)), (
                f"{key}: {name} differs from {SUPPORTED[0]} "
                f"(layout {case['layout']}, pooled {case['pooled']}, C {case['x'].shape[1]}): "
                + _first_difference(got, expected)
            )


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_every_set_at_detector_size(layout):
    """The benchmark's shape, scaled down: 512 channels (a power of two: the padded tiles, and
    more than one 64-channel block of the RoIAlign sums), 7x7, RoIs of every size on a ReLU
    map. Every set against torchvision, then against each other bit for bit (the hypothesis
    cases above keep to a few channels, where the reference is fast)."""
    rng = np.random.default_rng(7)
    x = np.maximum(rng.normal(size=(2, 512, 20, 24)), 0.0)
    boxes = rng.uniform(0, 300, size=(64, 4))
    boxes[:, 2:] = boxes[:, :2] + rng.uniform(0, 200, size=(64, 2))
    rois = np.concatenate([rng.integers(0, 2, size=(64, 1)), boxes], axis=1)
    case = {
        "x": x, "rois": rois, "scale": 1 / 16, "pooled": (7, 7), "layout": layout,
        "threads": 2, "seed": 3,
    }  # fmt: skip
    xt, rt = _inputs(case, torch.float32)
    xt.requires_grad_(True)
    grad = torch.tensor(
        integer_grads(np.random.default_rng(3), (64, 512, 7, 7)), dtype=torch.float32
    )
    tv_align = torchvision.ops.roi_align(xt, rt, (7, 7), 1 / 16, 2, False)
    (tv_align_grad,) = torch.autograd.grad(tv_align, xt, grad)
    tv_pool = torchvision.ops.roi_pool(xt.detach(), rt, (7, 7), 1 / 16)
    threads = torch.get_num_threads()
    try:
        per_isa = {}
        for name in SUPPORTED:
            with cpu_isa(name):
                per_isa[name] = _flatten(_all_results(case, torch.float32))
    finally:
        torch.set_num_threads(threads)
    for name, got in per_isa.items():
        assert torch.equal(got["roi_pool"], tv_pool), name
        assert torch.equal(got["roi_pool_inference"], tv_pool), name
        torch.testing.assert_close(got["roi_align.s2.legacy"], tv_align.detach(), msg=name)
        torch.testing.assert_close(
            got["roi_align.s2.legacy.backward"], tv_align_grad, atol=1e-4, rtol=1e-5, msg=name
        )
    for name in SUPPORTED[1:]:
        for key, expected in per_isa[SUPPORTED[0]].items():
            assert torch.equal(_bits(per_isa[name][key]), _bits(expected)), (key, name)
