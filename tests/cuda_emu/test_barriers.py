"""The emulator's blocks: barriers, shared memory, launch geometry and misuse, tested against
CUDA's definitions with the kernels of tests/cuda_emu/selftest/barriers.cu."""

import pytest
import torch

pytestmark = [pytest.mark.cuda_emu, pytest.mark.usefixtures("ext")]

E = torch.ops.frcnn_fast_cuda_emu  # its ops are looked up at call time, after `ext` loaded them


@pytest.mark.parametrize("n", [1, 2, 31, 32, 33, 100, 1024])
def test_barrier_orders_shared_memory(ext, n):
    x = torch.arange(n, dtype=torch.float32)
    for seed in range(5):
        ext.configure(seed=seed)
        assert torch.equal(E.selftest_reverse(x, True), x.flip(0))


@pytest.mark.deliberate_race  # ThreadSanitizer rightly reports it: make sanitize leaves it out there
def test_missing_barrier_gives_a_wrong_answer(ext):
    # Without __syncthreads a thread can read its mirror's slot before it is written (dynamic
    # shared memory starts as NaN); the schedules must expose that.
    x = torch.arange(64, dtype=torch.float32)
    wrong = 0
    for seed in range(10):
        ext.configure(seed=seed)
        wrong += not torch.equal(E.selftest_reverse(x, False), x.flip(0))
    assert wrong > 0


@pytest.mark.parametrize("workers", [1, 2])
def test_static_shared_memory_per_block(ext, workers):
    # 13 blocks share nothing but run two at a time on two OS threads: each block's tree sum
    # must see only its own static __shared__ array.
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(-1000, 1000, (13, 256), generator=gen).to(torch.float32)
    for seed in range(3):
        ext.configure(seed=seed, workers=workers)
        assert torch.equal(E.selftest_tree_sum(x), x.sum(1))


@pytest.mark.parametrize("n", [1, 5, 32, 33, 257, 1024])
def test_barrier_votes(ext, n):
    gen = torch.Generator().manual_seed(n)
    for pred in (
        torch.randint(0, 2, (n,), generator=gen, dtype=torch.int32),
        torch.zeros(n, dtype=torch.int32),
        torch.full((n,), 7, dtype=torch.int32),  # any non-zero value is true
    ):
        out = E.selftest_votes(pred)
        count = int((pred != 0).sum())
        assert out[0].tolist() == [count] * n
        assert out[1].tolist() == [int(count == n)] * n
        assert out[2].tolist() == [int(count > 0)] * n
        assert out[3].tolist() == [1] * n


@pytest.mark.parametrize(
    "grid,block",
    [
        ((1, 1, 1), (1, 1, 1)),
        ((3, 1, 1), (64, 1, 1)),
        ((2, 3, 2), (4, 2, 3)),
        ((1, 5, 1), (7, 1, 5)),
        ((1, 1, 1), (32, 32, 1)),
    ],
)
def test_every_thread_runs_once_with_its_coordinates(ext, grid, block):
    for workers in (1, 2):
        ext.configure(workers=workers)
        out = E.selftest_coords(list(grid), list(block), 0)
        total = grid[0] * grid[1] * grid[2] * block[0] * block[1] * block[2]
        assert out.tolist() == list(range(1, total + 1))


@pytest.mark.parametrize(
    "grid,block,shared,message",
    [
        ((1, 1, 1), (1025, 1, 1), 0, r"blockDim.x = 1025"),
        ((1, 1, 1), (1, 1, 65), 0, r"blockDim.z = 65"),
        ((1, 1, 1), (32, 32, 2), 0, r"2048 threads"),
        ((0, 1, 1), (32, 1, 1), 0, r"gridDim.x = 0"),
        ((1, 65536, 1), (32, 1, 1), 0, r"gridDim.y = 65536"),
        ((1, 1, 65536), (32, 1, 1), 0, r"gridDim.z = 65536"),
        ((1, 1, 1), (32, 1, 1), 48 * 1024 + 1, r"dynamic shared memory"),
        ((1 << 23, 1, 1), (1, 1, 1), 0, r"too large to emulate"),
    ],
)
def test_illegal_launch_is_an_error(grid, block, shared, message):
    with pytest.raises(
        RuntimeError, match=r"invalid launch configuration of kernel 'coords_kernel'.*" + message
    ):
        E.selftest_coords(list(grid), list(block), shared)


@pytest.mark.parametrize(
    "kind,message",
    [
        (
            0,
            r"barrier in divergent code.*(after \d+ thread\(s\) of the block had exited|exited while)",
        ),
        (1, r"different __syncthreads calls"),
        (2, r"deadlock"),
    ],
)
@pytest.mark.parametrize("threads", [2, 64, 256])
def test_misuse_is_an_error_not_a_hang(ext, kind, message, threads):
    for seed in range(4):
        ext.configure(seed=seed)
        with pytest.raises(RuntimeError, match=message + r".*kernel 'misuse_kernel'"):
            E.selftest_misuse(kind, threads)
    # the emulator is usable after a misuse
    x = torch.arange(8, dtype=torch.float32)
    assert torch.equal(E.selftest_reverse(x, True), x.flip(0))


def test_grid_cap_setting(ext):
    ext.configure(max_grid_dim=3)
    assert ext.config()["max_grid_dim"] == 3
    with pytest.raises(RuntimeError, match="max_grid_dim"):
        ext.configure(max_grid_dim=70000)
    with pytest.raises(RuntimeError, match="workers"):
        ext.configure(workers=0)
