"""The example's 2-process form (torchrun, DistributedDataParallel, gloo on CPU) trains the same
model as one process with the same global batch.

Tolerance: both runs compute the same float32 arithmetic except for the order of a few sums
(the convolutions and the box head over 2 images instead of 4, the gradient averaged across the
processes by gloo instead of summed within one batch), which changes results by a few float32
ulps (~1e-7 relative) per step (measured over the three SGD steps: at most 2.2e-7 on the
losses, 8e-11 on the weights' checksums). Every discrete decision (top-k, NMS, matching,
sampling) is taken on values that agree that closely, so none flips on these seeds.
``rtol=1e-4`` leaves a wide margin for other machines and still fails on any real mismatch:
normalising each process's losses by its own counts (instead of the global batch's) or letting
the processes draw their own samples moved the losses by 1.6e-4 to 5.5e-2 (measured).
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "faster_rcnn_synthetic.py"
ARGS = ["--steps", "3", "--size", "64", "--eval-images", "0", "--png", "", "--lr", "0.02"]
RTOL = 1e-4


# The 2-process launch has hung once in about ten runs on the 2-core CI machine (a worker left
# waiting in gloo after the other exited; not yet understood): a launch that outlives TIMEOUT is
# killed with all its workers and tried once more. Two hangs in a row fail the test.
TIMEOUT = 150
ATTEMPTS = 2


def _launch(cmd, env):
    """(returncode, stdout, stderr), or None when the launch and its workers had to be killed."""
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None
    return proc.returncode, out, err


def run(tmp_path, world):
    out = tmp_path / f"world{world}.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    launcher = [sys.executable]
    if world > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}"]
    cmd = [*launcher, str(EXAMPLE), *ARGS, "--batch", str(4 // world), "--out-json", str(out)]
    for _ in range(ATTEMPTS):
        result = _launch(cmd, env)
        if result is not None:
            break
    else:
        pytest.fail(f"{ATTEMPTS} launches of {world} process(es) hung past {TIMEOUT} s each")
    code, stdout, stderr = result
    assert code == 0, stdout[-3000:] + stderr[-3000:]
    return json.loads(out.read_text())


def test_two_processes_train_the_same_model_as_one(tmp_path):
    one, two = run(tmp_path, 1), run(tmp_path, 2)
    assert one["world"] == 1 and two["world"] == 2
    assert len(one["losses"]) == len(two["losses"]) == 3
    for step, (a, b) in enumerate(zip(one["losses"], two["losses"])):
        for name in a:
            assert b[name] == pytest.approx(a[name], rel=RTOL), (step, name, a, b)
    assert two["weights"] == pytest.approx(one["weights"], rel=RTOL)
