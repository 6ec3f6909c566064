"""The emulator's schedules: uniform, PCT (probabilistic concurrency testing) and the per-block
mix that the test suite uses, with the kernels of tests/cuda_emu/selftest/schedules.cu."""

import pytest
import torch

from . import SETTINGS

pytestmark = [pytest.mark.cuda_emu, pytest.mark.usefixtures("ext")]

E = torch.ops.frcnn_fast_cuda_emu

BLOCKS, ROUNDS, SEEDS = 16, 16, 20


def _exposed(ext, schedule):
    """Blocks (of BLOCKS x SEEDS) in which the starved reader saw warp 0's write."""
    hits = 0
    for seed in range(SEEDS):
        ext.configure(seed=seed, schedule=schedule)
        seen = E.selftest_starved_reader(BLOCKS, ROUNDS)
        assert set(seen.tolist()) <= {0, 1, 2}, seen
        hits += int((seen == 1).sum())
    return hits


@pytest.mark.deliberate_race  # the kernel races on purpose (TSan reports it)
def test_pct_finds_a_race_that_uniform_schedules_miss(ext):
    # Exposing it takes two long starvations: (1 - 1/34)^(32 x 16) ~ 2e-7 each under the uniform
    # schedule; under PCT, warp-major priorities 0 > 1 > 2 (1 in 6 of those blocks) suffice.
    assert _exposed(ext, "uniform") == 0
    assert _exposed(ext, "pct") >= 5
    assert _exposed(ext, "mixed") >= 1


def test_schedules_agree_on_correct_kernels(ext):
    # A kernel without races gives the same answer under every schedule and depth.
    x = torch.arange(64, dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    sums = torch.randint(-1000, 1000, (13, 256), generator=gen).to(torch.float32)
    for schedule in ("uniform", "pct", "mixed"):
        for depth in (1, 2, 3, 5):
            for seed in range(3):
                ext.configure(seed=seed, schedule=schedule, pct_depth=depth)
                assert torch.equal(E.selftest_reverse(x, True), x.flip(0))
                assert torch.equal(E.selftest_tree_sum(sums), sums.sum(1))


def test_mixed_schedule_runs_both(ext):
    ext.configure(seed=7, schedule="mixed")
    before = ext.stats()
    E.selftest_tree_sum(torch.zeros(64, 256))
    after = ext.stats()
    blocks = after["blocks"] - before["blocks"]
    pct = after["pct_blocks"] - before["pct_blocks"]
    assert blocks == 64
    assert 10 < pct < 54, pct


@pytest.mark.deliberate_race  # the starved reader races on purpose: what makes it replayable
def test_pct_replays_exactly(ext):
    # The same settings and launches give the same schedules (the learned step counts are
    # forgotten when the settings change), so a failing seed can be rerun.
    runs = []
    for _ in range(2):
        ext.configure(seed=3, schedule="pct", workers=1)
        runs.append([E.selftest_starved_reader(BLOCKS, ROUNDS).tolist() for _ in range(3)])
    assert runs[0] == runs[1]


def test_schedule_settings(ext):
    ext.configure(schedule="pct", pct_depth=4)
    c = ext.config()
    assert (c["schedule"], c["pct_depth"]) == ("pct", 4)
    assert set(SETTINGS) <= set(c)
    with pytest.raises(RuntimeError, match="schedule must be"):
        ext.configure(schedule="random")
    with pytest.raises(RuntimeError, match="pct_depth must be"):
        ext.configure(pct_depth=0)
