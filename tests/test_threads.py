"""Four Python threads calling the CPU ops at once get the same results as one thread.

Inference servers call a model from several threads; each call's kernels then run next to
other calls' kernels, each forking its own intra-op threads. A kernel with state shared
across calls (a static scratch buffer, a cache without a lock) would mix the calls' data.
The inputs are large enough that every kernel takes its multi-threaded path, and the results
must match bit for bit: every CPU kernel's result is independent of how its work is split.
"""

import os
import signal
import threading
import time

import pytest
import torch

import frcnn_fast

N_THREADS = 4
CALLS_PER_THREAD = 3
# Boxes per call: several tasks of frcnn_fast's grain (csrc/cpu/parallel.h), so that the box
# kernels fork too.
N_BOXES = 150_000


def _boxes(gen, n, extent=1000.0, max_side=200.0):
    xy = torch.rand(n, 2, generator=gen, dtype=torch.float64) * extent
    wh = torch.rand(n, 2, generator=gen, dtype=torch.float64) * max_side
    # Coordinates on a 1/16 px grid: many equal IoUs and areas, ties that an unstable kernel
    # would break differently from call to call.
    return (torch.cat([xy, xy + wh], dim=1) * 16).round().float() / 16


def _grad(out):
    return torch.arange(out.numel(), dtype=out.dtype).reshape(out.shape).remainder(7)


def _roi_inputs(gen, channels_last):
    x = torch.rand(2, 64, 40, 48, generator=gen)
    # ReLU-like: many zeros, so roi_pool's argmax meets ties.
    x = torch.relu(x - 0.5)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    b = _boxes(gen, 96, extent=300.0, max_side=180.0)
    idx = torch.randint(0, 2, (96, 1), generator=gen).float()
    return x, torch.cat([idx, b], dim=1)


def _roi_pool_fwd_bwd(x, rois):
    x = x.detach().requires_grad_()
    out = frcnn_fast.roi_pool(x, rois, (7, 7), 0.125)
    out.backward(_grad(out))
    return out.detach(), x.grad


def _roi_align_fwd_bwd(x, rois, aligned):
    x = x.detach().requires_grad_()
    out = frcnn_fast.roi_align(x, rois, (7, 7), 0.125, sampling_ratio=2, aligned=aligned)
    out.backward(_grad(out))
    return out.detach(), x.grad


def _multilevel(xs, rois, levels):
    xs = [x.detach().requires_grad_() for x in xs]
    out = frcnn_fast.multilevel_roi_align(xs, rois, levels, (7, 7), [0.25, 0.125], 2, True)
    out.backward(_grad(out))
    return (out.detach(), *(x.grad for x in xs))


def _cases():
    gen = torch.Generator().manual_seed(0)
    boxes = _boxes(gen, N_BOXES)
    other = _boxes(gen, N_BOXES)
    few = _boxes(gen, 300)
    scores = (torch.rand(N_BOXES, generator=gen) * 64).round() / 64  # many equal scores
    classes = torch.randint(0, 80, (N_BOXES,), generator=gen)
    nms_boxes, nms_scores, nms_classes = boxes[:20_000], scores[:20_000], classes[:20_000]
    deltas = torch.randn(N_BOXES // 4, 16, generator=gen) * 0.5
    feats = [torch.relu(torch.rand(2, 32, s, s, generator=gen) - 0.3) for s in (60, 30)]
    ml_rois = torch.cat([torch.randint(0, 2, (80, 1), generator=gen).float(), few[:80]], dim=1)
    ml_levels = torch.randint(0, 2, (80,), generator=gen)
    cases = {
        "box_area": lambda: frcnn_fast.box_area(boxes),
        "box_iou": lambda: frcnn_fast.box_iou(boxes[:2000], few),
        "box_iou_aligned": lambda: frcnn_fast.box_iou_aligned(boxes, other),
        "clip_boxes": lambda: frcnn_fast.clip_boxes(boxes, (600, 700)),
        "remove_small_boxes": lambda: frcnn_fast.remove_small_boxes(boxes, 50.0),
        "encode_boxes": lambda: frcnn_fast.encode_boxes(boxes, other),
        "decode_boxes": lambda: frcnn_fast.decode_boxes(deltas, boxes[: N_BOXES // 4]),
        "generate_anchors": lambda: frcnn_fast.generate_anchors((200, 272), 4),
        "nms": lambda: frcnn_fast.nms(nms_boxes, nms_scores, 0.5),
        "batched_nms": lambda: frcnn_fast.batched_nms(nms_boxes, nms_scores, nms_classes, 0.5),
        "nms_padded": lambda: frcnn_fast.nms_padded(nms_boxes, nms_scores, 0.5, 500, 0.2),
        "batched_nms_padded": lambda: frcnn_fast.batched_nms_padded(
            nms_boxes, nms_scores, nms_classes, 0.5, 3000, 0.2
        ),
        "multilevel_roi_align": lambda: _multilevel(feats, ml_rois, ml_levels),
    }
    for fmt in ("xywh", "cxcywh", "yxyx"):
        cases[f"box_convert_{fmt}"] = lambda fmt=fmt: frcnn_fast.box_convert(boxes, "xyxy", fmt)
    for layout in ("nchw", "nhwc"):
        x, rois = _roi_inputs(gen, layout == "nhwc")
        cases[f"roi_pool_{layout}"] = lambda x=x, rois=rois: _roi_pool_fwd_bwd(x, rois)
        for aligned in (False, True):
            cases[f"roi_align_{layout}_aligned{int(aligned)}"] = (
                lambda x=x, rois=rois, aligned=aligned: _roi_align_fwd_bwd(x, rois, aligned)
            )
    return cases


CASES = _cases()


def _flat(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _same(a, b):
    return len(a) == len(b) and all(
        x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, b)
    )


@pytest.fixture(scope="module", autouse=True)
def _two_intra_op_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name", sorted(CASES))
def test_four_threads_at_once_match_one(name):
    fn = CASES[name]
    expected = _flat(fn())
    start = threading.Barrier(N_THREADS)
    results = [[] for _ in range(N_THREADS)]
    errors = []

    def worker(slot):
        try:
            start.wait()
            for _ in range(CALLS_PER_THREAD):
                results[slot].append(_flat(fn()))
        except BaseException as exc:  # reported below: a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for slot, calls in enumerate(results):
        assert len(calls) == CALLS_PER_THREAD
        for call, got in enumerate(calls):
            assert _same(got, expected), f"thread {slot}, call {call}: differs from one thread"


def test_an_error_in_a_split_call_reaches_the_caller():
    # Enough RoIs per image that the backward splits over (image, channel block) tasks, and an
    # argmax out of range in every task: whichever thread runs a task raises, and the error
    # must come back to the caller as the op's own message, every time, without a crash.
    gen = torch.Generator().manual_seed(1)
    k, c, h, w = 128, 64, 8, 8
    grad = torch.rand(k, c, 7, 7, generator=gen)
    rois = torch.cat([torch.arange(k).remainder(2).float()[:, None], _boxes(gen, k, 8.0, 4.0)], 1)
    argmax = torch.full((k, c, 7, 7), h * w, dtype=torch.long)
    for _ in range(20):
        with pytest.raises(RuntimeError, match="argmax must be -1 or in"):
            torch.ops.frcnn_fast._roi_pool_backward(grad, rois, argmax, 2, c, h, w, False, False)


def test_a_split_call_works_in_a_forked_child():
    # DataLoader workers are forked from a process that has already run the model: the child
    # has none of the parent's helper threads. A split call there must not wait for them (a
    # hang) and must give the parent's bits. The child compares through NumPy: torch's own
    # parallel loops may hang in a forked child.
    n = 200_000
    gen = torch.Generator().manual_seed(2)
    b = _boxes(gen, n)
    expected = frcnn_fast.box_area(b).numpy().tobytes()  # split: uses the helpers
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 when the bits match, 1 otherwise
        code = 1
        try:
            code = 0 if frcnn_fast.box_area(b).numpy().tobytes() == expected else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("a split call in a forked child did not return within 60 s")
    assert os.waitstatus_to_exitcode(status) == 0, "the forked child's result differs"
