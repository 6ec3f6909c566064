"""Compile test: the example detector's inference path (anchors, generate_proposals_padded,
RoIAlign, box head, batched_nms_padded) under torch.compile(fullgraph=True) and torch.export,
against eager. Small images and one compilation each: compiling is slow on small CI machines.
"""

import importlib.util
from pathlib import Path

import pytest
import torch

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "faster_rcnn_synthetic.py"


def example():
    spec = importlib.util.spec_from_file_location("faster_rcnn_synthetic", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def detector_and_images():
    ex = example()
    torch.manual_seed(0)
    model = ex.FasterRCNN(64).eval()
    # low thresholds, so that the random-weight model keeps some detections to compare
    detector = ex.Detector(model, score_thresh=0.2, max_dets=20, pre=100, post=16).eval()
    images = ex.batch(__import__("numpy").random.default_rng(0), 2, 64)[0]
    with torch.no_grad():
        want = detector(images)
    assert int(want[3].min()) > 0, "no detections: the comparison would be vacuous"
    return detector, images, want


def check_same(got, want):
    boxes, scores, labels, counts = got
    assert torch.equal(counts, want[3]) and torch.equal(labels, want[2])
    torch.testing.assert_close(boxes, want[0], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(scores, want[1], rtol=1e-5, atol=1e-6)


def test_compile_fullgraph_inference_matches_eager(detector_and_images):
    detector, images, want = detector_and_images
    torch._dynamo.reset()
    compiled = torch.compile(detector, fullgraph=True, backend="inductor")
    with torch.no_grad():
        check_same(compiled(images), want)


def test_export_inference_matches_eager(detector_and_images):
    detector, images, want = detector_and_images
    exported = torch.export.export(detector, (images,))
    with torch.no_grad():
        check_same(exported.module()(images), want)
