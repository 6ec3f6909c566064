"""Proof that the sanitizer builds catch what they are for (run by ``make sanitize``).

    python -m tests.cuda_emu.canaries address|thread

Runs each deliberately broken kernel of selftest/canaries.cu in a child process (already under
the sanitizer runtime that ``make sanitize`` preloads) and exits non-zero unless the sanitizer
reported every one of them: a sanitizer run that passes because it sees nothing is no proof.
Each child first runs a clean launch on both workers, so that the canary runs on the reused
emulator threads that every later launch of a test runs on.
"""

import os
import subprocess
import sys

CASES = {
    "address": [
        ("canary_shared_overrun", 64, "heap-buffer-overflow"),
        ("canary_global_overrun", 64, "heap-buffer-overflow"),
        ("canary_static_shared_overrun", 64, "heap-buffer-overflow"),
    ],
    "thread": [
        ("canary_shared_race", 64, "data race"),
        ("canary_global_race", 64, "data race"),
        ("canary_block_race", 64, "data race"),
        # rounds=0: a read-modify-write race; rounds=3: the missing end-of-loop barrier
        ("canary_static_shared_race", 0, "data race"),
        ("canary_static_shared_race", 3, "data race"),
    ],
}

CHILD = """
import sys, torch
sys.path.insert(0, {tests!r})
import cuda_emu
cuda_emu.load()
torch.ops.frcnn_fast_cuda_emu.canary_warm_up(8)
getattr(torch.ops.frcnn_fast_cuda_emu, {op!r})({arg})
"""


def main():
    variant = sys.argv[1]
    tests_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, FRCNN_CUDA_EMU_VARIANT=variant)
    failed = 0
    for op, arg, report in CASES[variant]:
        child = subprocess.run(
            [sys.executable, "-c", CHILD.format(tests=tests_dir, op=op, arg=arg)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        caught = child.returncode != 0 and report in child.stderr
        print(
            f"{variant}: {op}: {'caught' if caught else 'NOT CAUGHT'} ({report!r}, exit {child.returncode})"
        )
        if not caught:
            failed += 1
            sys.stderr.write(child.stderr[-4000:])
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
