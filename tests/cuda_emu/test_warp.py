"""The emulator's warp collectives and atomics against CUDA's definitions (kernels in
tests/cuda_emu/selftest/warp.cu), and its misuse errors."""

import pytest
import torch

pytestmark = [pytest.mark.cuda_emu, pytest.mark.usefixtures("ext")]

SYNCWARP, BALLOT, ANY, ALL, SHFL, SHFL_UP, SHFL_DOWN, SHFL_XOR, ACTIVEMASK = range(9)
FULL = 0xFFFFFFFF


def run(op, masks, values, live=None, arg=0, width=32):
    n = len(masks)
    ops = torch.tensor(op if isinstance(op, list) else [op] * n)
    live = (
        torch.ones(n, dtype=torch.int32) if live is None else torch.tensor(live, dtype=torch.int32)
    )
    return torch.ops.frcnn_fast_cuda_emu.selftest_collective(
        ops,
        torch.tensor(masks, dtype=torch.int64),
        torch.tensor(values, dtype=torch.int64),
        live,
        arg,
        width,
    ).tolist()


def warp_of(lane_count, t):
    base = t - t % 32
    return base, min(32, lane_count - base)


def groups(n, gen):
    """Per-thread masks: each warp's lanes split into random groups, each lane naming its group."""
    masks = [0] * n
    for base in range(0, n, 32):
        lanes = list(range(base, min(n, base + 32)))
        perm = torch.randperm(len(lanes), generator=gen).tolist()
        k = int(torch.randint(1, 4, (1,), generator=gen))
        for g in range(k):
            members = [lanes[p] for i, p in enumerate(perm) if i % k == g]
            m = sum(1 << (t - base) for t in members)
            for t in members:
                masks[t] = m
    return masks


@pytest.mark.parametrize("n", [1, 7, 32, 45, 96])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_votes(ext, n, seed):
    ext.configure(seed=seed)
    gen = torch.Generator().manual_seed(seed * 100 + n)
    masks = groups(n, gen)
    values = torch.randint(0, 2, (n,), generator=gen).tolist()
    ballot = run(BALLOT, masks, values)
    anys = run(ANY, masks, values)
    alls = run(ALL, masks, values)
    for t in range(n):
        base = t - t % 32
        want = sum(
            1 << (u - base)
            for u in range(base, min(n, base + 32))
            if masks[t] >> (u - base) & 1 and values[u]
        )
        assert ballot[t] == want
        assert anys[t] == int(want != 0)
        assert alls[t] == int(want == masks[t])
    assert run(SYNCWARP, masks, values) == [0] * n


@pytest.mark.parametrize("width", [1, 2, 4, 8, 16, 32])
@pytest.mark.parametrize("arg", [0, 1, 3, 5, 17, 31, -1])
def test_shuffles(ext, width, arg):
    n = 64
    values = [1000 + 7 * t for t in range(n)]
    masks = [FULL] * n

    def lane_value(t, src_lane):
        return values[t - t % 32 + src_lane]

    shfl = run(SHFL, masks, values, arg=arg, width=width)
    for t in range(n):
        lane = t % 32
        assert shfl[t] == lane_value(t, (lane // width) * width + arg % width)
    if arg < 0:
        return
    up = run(SHFL_UP, masks, values, arg=arg, width=width)
    down = run(SHFL_DOWN, masks, values, arg=arg, width=width)
    xor = run(SHFL_XOR, masks, values, arg=arg, width=width)
    for t in range(n):
        lane = t % 32
        seg = lane % width
        assert up[t] == (values[t] if seg - arg < 0 else lane_value(t, lane - arg))
        assert down[t] == (values[t] if seg + arg >= width else lane_value(t, lane + arg))
        src = lane ^ arg
        assert xor[t] == (values[t] if src >= (lane // width + 1) * width else lane_value(t, src))


def test_shuffle_moves_64_bit_values(ext):
    values = [(1 << 40) + t for t in range(32)]
    assert run(SHFL_DOWN, [FULL] * 32, values, arg=1) == values[1:] + values[31:]


@pytest.mark.parametrize("n", [1, 20, 32, 50])
def test_activemask_names_live_lanes(ext, n):
    # No meeting point: a lane sees its own bit, no lane outside its warp, and lanes that have
    # already exited are gone (the first lane of each warp to run sees them all).
    out = run(ACTIVEMASK, [FULL] * n, [0] * n)
    for base in range(0, n, 32):
        lanes = (1 << min(32, n - base)) - 1
        got = out[base : base + 32]
        assert all(m >> (t - base) & 1 and m & ~lanes == 0 for t, m in enumerate(got, start=base))
        assert lanes in got


MISUSE = [
    # (what, ops, masks, live, arg, width, message)
    ("lane not in its own mask", BALLOT, [0b10, 0b10], None, 0, 32, r"does not name its own lane"),
    (
        "mask names absent lanes",
        BALLOT,
        [FULL] * 40,
        None,
        0,
        32,
        r"naming lane 8, which does not exist",
    ),
    (
        "mask names an exited lane",
        BALLOT,
        [0b11, 0b11],
        [1, 0],
        0,
        32,
        r"naming lane 1, which has exited",
    ),
    ("width not a power of 2", SHFL, [FULL] * 32, None, 0, 3, r"width 3"),
    (
        "shuffle source outside the mask",
        SHFL,
        [0b11, 0b11],
        None,
        5,
        32,
        r"from lane 5, which is not in the mask",
    ),
    (
        "different collectives in one mask",
        [BALLOT, ANY],
        [0b11, 0b11],
        None,
        0,
        32,
        r"different warp collectives",
    ),
    (
        "different masks",
        BALLOT,
        [0b11, 0b111, 0b111],
        None,
        0,
        32,
        r"different warp collectives|deadlock",
    ),
]


@pytest.mark.parametrize("case", MISUSE, ids=[m[0] for m in MISUSE])
def test_misuse_is_an_error_not_a_hang(ext, case):
    _, op, masks, live, arg, width, message = case
    for seed in range(6):
        ext.configure(seed=seed)
        with pytest.raises(RuntimeError, match=message):
            run(op, masks, [1] * len(masks), live=live, arg=arg, width=width)
    assert run(BALLOT, [FULL] * 32, [1] * 32) == [FULL] * 32


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("blocks,threads", [(1, 1), (8, 64), (5, 33)])
def test_atomics(ext, workers, blocks, threads):
    n = blocks * threads
    for seed in range(3):
        ext.configure(seed=seed, workers=workers)
        f32, f64, i32, u32, u64, ticket = torch.ops.frcnn_fast_cuda_emu.selftest_atomics(
            blocks, threads
        )
        assert f32.item() == n and f64.item() == n / 2
        assert i32[0].item() == n and i32[1].item() == n - 1 and i32[2].item() == -(n - 1)
        assert 0 <= i32[3].item() < n  # atomicExch: the last writer's value
        assert (u32[0].item() & 0xFFFFFFFF) == (FULL if n >= 32 else (1 << n) - 1)
        assert u32[1].item() == 3 * n  # the CAS loop lost no update
        assert u64[0].item() == n << 33 and u64[1].item() == n
        assert sorted(ticket.tolist()) == list(range(n))


def test_schedules_follow_the_seed(ext):
    """The order in which threads reach an atomic is the schedule: the same seed (one worker)
    gives the same order, other seeds give others, and threads do not just run in index order."""

    def tickets(seed):
        ext.configure(seed=seed, workers=1)
        return torch.ops.frcnn_fast_cuda_emu.selftest_atomics(4, 64)[-1].tolist()

    first = tickets(5)
    assert tickets(5) == first
    others = [tickets(s) for s in range(6, 10)]
    assert any(o != first for o in others)
    assert first != list(range(256))
