"""The detector benchmark (benchmarks/ops/detector.py) on small images: both ops run through the
benchmark runner with and without the patch, their outputs agree, the patch is off afterwards,
and its comparison refuses detections that differ."""

import dataclasses

import numpy as np
import pytest
import torch

import frcnn_fast
from benchmarks.ops import detector
from benchmarks.registry import Case, all_ops
from benchmarks.runner import load_libraries, run

# 2 images 3x96x128, resized to 128 (not 800), 100 proposals per image (not 1,000): the
# box head's linear layers on 2,000 RoIs would take seconds.
SMALL_MODEL = dict(
    min_size=128,
    max_size=128,
    rpn_pre_nms_top_n_test=100,
    rpn_post_nms_top_n_test=100,
    rpn_pre_nms_top_n_train=100,
    rpn_post_nms_top_n_train=100,
    box_batch_size_per_image=64,
)
SMALL = Case("2 x 3x96x128", 2, dict(images=2, height=96, width=128, model=SMALL_MODEL))


def test_both_ops_are_registered_and_agree_with_and_without_the_patch():
    ops = {op.name: op for op in all_ops() if op.family == "detector"}
    assert set(ops) == {
        "detector",
        "detector_post_backbone",
        "detector_post_backbone_pipeline",
        "detector_post_processing",
        "detector_train_post_backbone",
        "detector_train_post_backbone_pipeline",
    }
    small = [dataclasses.replace(op, cases=[SMALL]) for op in ops.values()]
    results = run(
        small,
        ["cpu", "torchvision-cpu"],
        load_libraries(need_frcnn=True),
        time_it=False,
        log=lambda line: None,
        progress=False,
    )
    assert [(r.op, r.impl, r.status, r.message) for r in results] == [
        (op.name, impl, "ok", "") for op in small for impl in ("cpu", "torchvision-cpu")
    ]
    assert not frcnn_fast.is_patched()


@pytest.mark.parametrize("name", ["detector_post_backbone", "detector_train_post_backbone"])
def test_the_patched_thunk_runs_our_kernels_and_the_other_torchvisions(name):
    op = next(op for op in all_ops() if op.name == name)
    rng = np.random.default_rng(0)
    images = torch.from_numpy(detector._inputs(SMALL, rng)["images"]).float()
    from benchmarks.registry import Context

    ctx = Context(case=SMALL, inputs={"images": images}, device=torch.device("cpu"))
    for factory, ours in ((op.frcnn, True), (op.torchvision, False)):
        thunk = factory(ctx)
        with frcnn_fast.count_kernels() as counter:
            thunk()
        assert (counter.counts["frcnn_fast"] > 0) == ours
        assert (counter.counts["torchvision"] > 0) == (not ours)
    assert not frcnn_fast.is_patched()


def _detections(n=5):
    rows = np.zeros((n, 7))
    rows[:, 0] = np.arange(n) % 2
    rows[:, 1] = np.arange(n) + 1
    rows[:, 2] = np.linspace(0.9, 0.1, n)
    rows[:, 3:] = np.arange(4 * n).reshape(n, 4) * 10.0
    return rows


def test_compare_detections_refuses_what_differs():
    compare = detector.compare_detections
    base = _detections()
    assert compare(base.copy(), base, 1e-4, 6.4e-3) is None
    assert "4 detections != 5" in compare(base[:4], base, 1e-4, 6.4e-3)
    assert "nothing was compared" in compare(base[:0], base[:0], 1e-4, 6.4e-3)
    for column in (0, 1, 2, 4):  # image, label, score, a coordinate
        other = base.copy()
        other[3, column] += 0.5
        assert "row 3 " in compare(other, base, 1e-4, 6.4e-3)
    near = base.copy()
    near[:, 3:] += 1e-3  # float rounding of pooled features moves boxes by far less than this
    assert compare(near, base, 1e-4, 6.4e-3) is None
    # Two detections of equal score (and image) in the other order: the same detections.
    tied = base.copy()
    tied[[1, 3], 2] = 0.5
    tied[1, 0] = tied[3, 0]
    swapped = tied[[0, 3, 2, 1, 4]]
    assert compare(swapped, tied, 1e-4, 6.4e-3) is None
    moved = swapped.copy()
    moved[1, 5] += 1.0
    assert "has no counterpart" in compare(moved, tied, 1e-4, 6.4e-3)


def test_compare_losses_refuses_what_differs():
    base = np.array([0.69, 0.05, 4.5, 0.01, 3.0e-4])
    assert detector.compare_losses(base * (1 + 1e-6), base, 1e-4, 0.0) is None
    for i, name in enumerate(detector.LOSS_NAMES + ("|d features|^2",)):
        other = base.copy()
        other[i] *= 1.01
        assert name in detector.compare_losses(other, base, 1e-4, 0.0)
    # The pipeline's draw may differ by tens of percent, but not be lost or blow up.
    assert detector.compare_pipeline_losses(base * 1.3, base, 1e-4, 0.0) is None
    assert "loss_classifier" in detector.compare_pipeline_losses(
        base * [1, 1, 3, 1, 1], base, 1e-4, 0.0
    )
    assert "non-finite" in detector.compare_pipeline_losses(base * np.nan, base, 1e-4, 0.0)
