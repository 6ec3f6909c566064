"""The benchmarks' roofline figures: the bound and fraction arithmetic, each op's declared work
(bytes and flops), the RoI-pooling cell count against the reference's own bin rounding, and the
peaks and fractions a run records."""

import dataclasses
import importlib
import json

import numpy as np
import pytest
import torch

from benchmarks import cli
from benchmarks.data import rng_for
from benchmarks.headline import HEADLINE, headline_table
from benchmarks.ops.nms import greedy_work
from benchmarks.ops.roi import pooled_cells
from benchmarks.plot import replot
from benchmarks.registry import Context, all_ops
from benchmarks.roofline import Work, fmt_fraction, row_figures
from benchmarks.runner import load_libraries, to_numpy

PEAKS = {"bandwidth_gbs": 10.0, "gflops": {"1": 100.0, "2": 200.0}}


def test_the_bound_is_the_slower_of_memory_and_arithmetic():
    memory_bound = Work(values=1e6, flops=1e6)  # 4 MB at 10 GB/s = 0.4 ms; 1 MFLOP = 5 us
    row = row_figures(memory_bound, 4, 0.8, PEAKS, threads=2)
    assert row["bytes"] == 4e6 and row["flops"] == 1e6
    assert row["bound_by"] == "memory"
    assert row["bound_ms"] == pytest.approx(0.4)
    assert row["roofline_fraction"] == pytest.approx(0.5)
    assert row["achieved_gbs"] == pytest.approx(5.0)
    assert fmt_fraction(row) == "50% mem"

    compute_bound = Work(values=1e3, flops=1e9)  # 1 GFLOP: 10 ms on 1 thread, 5 ms on 2
    assert row_figures(compute_bound, 4, 20.0, PEAKS, threads=1)["roofline_fraction"] == 0.5
    row = row_figures(compute_bound, 8, 20.0, PEAKS, threads=2)
    assert (row["bound_by"], row["roofline_fraction"]) == ("compute", pytest.approx(0.25))
    assert row["achieved_gflops"] == pytest.approx(50.0)
    assert fmt_fraction(row) == "25% fp"


def test_without_peaks_a_row_has_its_work_but_no_fraction():
    row = row_figures(Work(values=10, flops=20, fixed_bytes=8), 2, 1.0, None, threads=2)
    assert row["bytes"] == 28 and "roofline_fraction" not in row
    assert fmt_fraction(row) == fmt_fraction(None) == "—"
    assert fmt_fraction({"roofline_fraction": 0.0012, "bound_by": "memory"}) == "0.1% mem"


def test_nms_work_counts_one_iou_per_suppressed_box():
    inputs = {"boxes": np.zeros((5, 4)), "scores": np.zeros(5)}
    work = greedy_work(inputs, np.array([0, 3]))  # 2 kept, 3 suppressed
    assert (work.values, work.flops, work.fixed_bytes) == (25, 3 * 5 + 12 * 3, 8 * 2)
    with_groups = greedy_work(dict(inputs, idxs=np.zeros(5)), np.array([0, 3]))
    assert with_groups.fixed_bytes == 8 * 2 + 8 * 5  # the int64 group ids are read too


def test_pooled_cells_follow_the_references_bins():
    roi_pool = importlib.import_module("reference.roi_pool")
    rng = np.random.default_rng(3)
    boxes = rng.uniform(0, 800, (60, 4))
    boxes = np.concatenate(
        [np.minimum(boxes[:, :2], boxes[:, 2:]), np.maximum(boxes[:, :2], boxes[:, 2:])], 1
    )
    boxes[:5, 2:] = boxes[:5, :2]  # zero-size RoIs: one cell
    rois = np.concatenate([np.zeros((60, 1)), boxes], axis=1)
    expected = 0
    for r in rois:
        _, xs, ys, rw, rh = roi_pool._roi_cells(r[1:], 1 / 16, np.float32)
        for ph in range(7):
            h0, h1 = roi_pool._bin(ph, 7, ys, rh, 50, np.float32)
            for pw in range(7):
                w0, w1 = roi_pool._bin(pw, 7, xs, rw, 50, np.float32)
                expected += max(h1 - h0, 0) * max(w1 - w0, 0)
    assert pooled_cells(rois, 1 / 16, 50, 50) == expected


def test_every_op_declares_plausible_work():
    """Each op's work on its first case, from the kernel's output: bytes at least the output's,
    some flops (the output is from the cpu kernel: the work only needs its size)."""
    lib = load_libraries(need_frcnn=True).frcnn
    cpu = torch.device("cpu")
    for op in all_ops():
        if op.work is None:
            continue
        case = op.cases[0]
        if "r" in case.params:  # RoI ops: a few RoIs say as much and run in a fraction
            case = dataclasses.replace(case, params=dict(case.params, r=8))
        arrays = op.make_inputs(case, rng_for(0, op.name, case.label))
        tensors = {k: torch.from_numpy(v).float() for k, v in arrays.items()}
        ctx = Context(case=case, inputs=tensors, lib=lib, device=cpu, dtype=torch.float32)
        out = to_numpy(op.frcnn(ctx)())
        work = op.work(case, arrays, out)
        assert work.flops > 0, op.name
        out_bytes = out.size * (8 if out.dtype == np.int64 else 4)
        assert work.nbytes(4) >= out_bytes, op.name
        inputs_bytes = sum(v.size for k, v in arrays.items() if k != "grad") * 4
        assert work.nbytes(4) <= inputs_bytes * 2 + out_bytes * 2 + 8 * out.size, op.name


def test_a_run_records_peaks_and_fractions(tmp_path):
    argv = ["--ops", "box_iou", "--impls", "cpu", "--sizes", "0", "--min-run-time", "0.01"]
    assert cli.main(argv + ["--no-plot", "--no-progress", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "bench-cpu.json").read_text())
    peaks = doc["roofline"]["cpu"]
    assert peaks["bandwidth_gbs"] == max(peaks["fill_gbs"], peaks["copy_gbs"]) > 0
    assert set(peaks["gflops"]) == {"1", "2"} and min(peaks["gflops"].values()) > 0
    assert "fill_" in peaks["method"] and "torch.mm" in peaks["method"]
    (res,) = doc["results"]
    assert res["bytes"] == 4 * (4 * (22_500 + 2) + 22_500 * 2)  # boxes read, matrix written
    assert res["flops"] == 12 * 22_500 * 2 + 3 * (22_500 + 2)
    assert res["roofline_fraction"] == pytest.approx(res["bound_ms"] / res["median_ms"])
    assert res["bound_by"] in ("memory", "compute")
    md = (tmp_path / "bench-cpu.md").read_text()
    assert "cpu of roofline" in md and "Roofline peaks (cpu)" in md
    # the committed runs predate these fields: --compare and the plot still read both
    old = cli.RESULTS_DIR / "bench-cpu.json"
    assert cli.main(["--compare", str(old), str(tmp_path / "bench-cpu.json")]) == 0
    assert replot(tmp_path / "bench-cpu.json").stat().st_size > 0

    assert (
        cli.main(argv + ["--no-plot", "--no-progress", "--no-roofline", "--out", str(tmp_path)])
        == 0
    )
    (res,) = json.loads((tmp_path / "bench-cpu.json").read_text())["results"]
    assert res["bytes"] > 0 and "roofline_fraction" not in res


def test_headline_shows_fractions_once_the_results_have_them(tmp_path):
    for stem in {row[0] for row in HEADLINE}:
        doc = json.loads((cli.RESULTS_DIR / f"{stem}.json").read_text())
        for r in doc["results"]:
            r.update(roofline_fraction=0.25, bound_by="compute")
        (tmp_path / f"{stem}.json").write_text(json.dumps(doc))
    table = headline_table(tmp_path)
    assert table.count("25% fp") == 2 * len(HEADLINE)
    # a result file recorded before the peaks were measured: no figure, a dash
    doc = json.loads((tmp_path / "bench-cpu.json").read_text())
    for r in doc["results"]:
        r.pop("roofline_fraction")
    (tmp_path / "bench-cpu.json").write_text(json.dumps(doc))
    assert "—" in headline_table(tmp_path)
