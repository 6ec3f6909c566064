"""Peak memory in a benchmark run: an op that declares ``memory`` gets ``peak_mb`` in the JSON
and a ``peak (MB)`` column per implementation; match_boxes measures it in a fresh process."""

import json

from benchmarks import cli
from benchmarks.ops import match
from benchmarks.registry import all_ops


def test_declared_memory_reaches_the_json_and_the_table(tmp_path, monkeypatch):
    op = {o.name: o for o in all_ops()}["box_iou"]
    calls = []

    def fake(case, impl, threads):
        calls.append((case.label, impl, threads))
        return 12.5

    monkeypatch.setattr(op, "memory", fake)
    argv = ["--ops", "box_iou", "--impls", "cpu,reference", "--sizes", "0"]
    argv += ["--min-run-time", "0.01", "--no-plot", "--no-progress", "--no-roofline"]
    assert cli.main(argv + ["--out", str(tmp_path)]) == 0
    assert calls == [(op.cases[0].label, "cpu", 2)]  # not for the NumPy reference
    rows = {r["impl"]: r for r in json.loads((tmp_path / "bench-cpu.json").read_text())["results"]}
    assert rows["cpu"]["peak_mb"] == 12.5 and "peak_mb" not in rows["reference"]
    md = (tmp_path / "bench-cpu.md").read_text()
    assert "cpu peak (MB)" in md and "12.5" in md and "reference peak" not in md


def test_match_measures_a_fresh_process():
    ops = {o.name: o for o in all_ops()}
    assert ops["match_boxes"].memory is ops["match_boxes_many_gt"].memory is not None
    row = match.measure_fresh("cpu", 10, 1)
    # the fused matcher's few int64/float arrays over 268,569 anchors, not a G x A matrix
    assert 0 < row["peak_mb"] < 50 and row["gts"] == 10
