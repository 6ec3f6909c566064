"""The README's headline table: a few cases that matter in a detector, read from the committed
runs in ``benchmarks/results/``. ``python -m benchmarks.headline`` prints it; the README holds
that output verbatim (``tests/test_benchmarks_cli.py`` checks), so rerun this after
``--update-results`` and paste."""

from __future__ import annotations

import json
from pathlib import Path

from .report import fmt_ms, markdown_table
from .roofline import fmt_fraction
from .runner import REPO_ROOT

RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"

# (results file stem, op, case label, what the case stands for, ours, theirs)
HEADLINE = [
    ("bench-cpu", "box_iou", "22,500x2", "RPN anchors x ground truths", "cpu", "torchvision-cpu"),
    ("bench-cpu", "decode_boxes", "20,000x4", "decode RPN proposals", "cpu", "torchvision-cpu"),
    ("bench-cpu", "generate_anchors", "200x272 s4 A3", "FPN P2 anchors", "cpu", "torchvision-cpu"),
    (
        "bench-cpu-nms-roi",
        "nms_clustered",
        "12,000",
        "RPN NMS, 12k boxes",
        "cpu",
        "torchvision-cpu",
    ),
    (
        "bench-cpu-nms-roi",
        "batched_nms",
        "20,000 / 80 cls",
        "box-head NMS, 80 classes",
        "cpu",
        "torchvision-cpu",
    ),
    (
        "bench-cpu-nms-roi",
        "roi_pool",
        "300 NCHW",
        "Fast R-CNN RoI pooling",
        "cpu",
        "torchvision-cpu",
    ),
    ("bench-cpu-nms-roi", "roi_align", "2,000 NCHW", "RoIAlign forward", "cpu", "torchvision-cpu"),
    (
        "bench-cpu-nms-roi",
        "roi_align_fwd_bwd",
        "2,000 NCHW",
        "RoIAlign forward + backward",
        "cpu",
        "torchvision-cpu",
    ),
    (
        "bench-cpu-nms-roi",
        "multiscale_roi_align",
        "2,000 NHWC",
        "FPN RoIAlign, channels-last",
        "cpu",
        "torchvision-cpu",
    ),
]


def headline_table(results_dir: Path = RESULTS_DIR) -> str:
    docs = {}
    rows = [["op", "case", "what", "frcnn_fast (ms)", "torchvision (ms)", "speed-up"]]
    rows[0] += ["roofline (ours)", "roofline (torchvision)"]
    for stem, op, case, what, ours, theirs in HEADLINE:
        if stem not in docs:
            docs[stem] = json.loads((results_dir / f"{stem}.json").read_text())
        by_key = {(r["op"], r["size_label"], r["impl"]): r for r in docs[stem]["results"]}
        ra, rb = by_key[(op, case, ours)], by_key[(op, case, theirs)]
        a, b = ra["median_ms"], rb["median_ms"]
        label = f"`{op}`" + ("" if ours == "cpu" else f" ({ours})")
        # runs recorded before the roofline figures existed show "—" there
        fractions = [fmt_fraction(ra), fmt_fraction(rb)]
        rows.append([label, case, what, fmt_ms(a), fmt_ms(b), f"{b / a:.1f}x", *fractions])
    return markdown_table(rows, left=3)


if __name__ == "__main__":
    print(headline_table())
