"""`python -m benchmarks` as a tool: where results go (never over the committed ones unless
asked), the --sizes filter, --compare's ratio table, the load average in the JSON, and the
README's headline table being the committed results' (python -m benchmarks.headline)."""

import json

import pytest

from benchmarks import cli
from benchmarks.headline import headline_table
from benchmarks.registry import all_ops
from benchmarks.runner import REPO_ROOT


def test_a_plain_run_writes_a_fresh_folder_not_the_results(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "RUNS_DIR", tmp_path / "runs")
    committed = {p: p.stat().st_mtime_ns for p in cli.RESULTS_DIR.iterdir()}
    argv = ["--ops", "box_iou", "--impls", "cpu", "--sizes", "0", "--min-run-time", "0.01"]
    assert cli.main(argv + ["--no-plot", "--no-progress"]) == 0
    assert {p: p.stat().st_mtime_ns for p in cli.RESULTS_DIR.iterdir()} == committed
    (run,) = (tmp_path / "runs").iterdir()
    doc = json.loads((run / "bench-cpu.json").read_text())
    (res,) = doc["results"]
    assert (res["op"], res["size_label"], res["impl"]) == ("box_iou", "22,500x2", "cpu")
    assert res["q1_ms"] <= res["median_ms"] <= res["q3_ms"] <= res["max_ms"]
    assert doc["device"]["load_average_at_start"] is not None
    assert doc["device"]["load_average_at_end"] is not None
    assert "load " in (run / "bench-cpu.md").read_text().splitlines()[0]


def test_output_dir_choices(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "RUNS_DIR", tmp_path)
    parse = cli.build_parser().parse_args
    assert cli.output_dir(parse([])).parent == tmp_path
    assert cli.output_dir(parse(["--update-results"])) == REPO_ROOT / "benchmarks" / "results"
    assert cli.output_dir(parse(["--out", "x"])).name == "x"
    with pytest.raises(SystemExit, match="drop --out"):
        cli.output_dir(parse(["--update-results", "--out", "x"]))


def test_sizes_filter_by_index_and_label():
    ops = cli.select_ops(["nms", "roi_align"])
    picked = cli.select_cases(ops, ["0", "NHWC"])
    labels = {op.name: [c.label for c in op.cases] for op in picked}
    assert labels["nms"] == ["1,000"]
    assert labels["roi_align"] == ["128 NCHW", "128 NHWC", "300 NHWC", "2,000 NHWC"]
    names = [op.name for op in cli.select_cases(ops, ["6,000"])]
    assert "nms" in names and "roi_align" not in names
    registered = {op.name: op for op in all_ops()}
    assert len(registered["roi_align"].cases) == 6  # the registry itself is left whole
    with pytest.raises(SystemExit, match="no case matches"):
        cli.select_cases(ops, ["no such case"])


def _run_file(path, medians, load=0.1):
    results = [
        dict(
            op="nms",
            size_label=label,
            impl="cpu",
            status="ok",
            median_ms=m,
            q1_ms=m * 0.9,
            q3_ms=m * 1.1,
        )
        for label, m in medians.items()
    ]
    device = dict(
        cpu="test CPU", threads=2, cpu_count=2, load_average_at_start=load, load_average_at_end=load
    )
    path.write_text(json.dumps(dict(timestamp="t", device=device, results=results)))
    return path


def test_compare_prints_ratios_with_spread(tmp_path, capsys):
    a = _run_file(tmp_path / "a.json", {"1,000": 2.0, "6,000": 10.0, "only A": 1.0})
    b = _run_file(tmp_path / "b.json", {"1,000": 1.0, "6,000": 10.0}, load=3.0)
    assert cli.main(["--compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[2].strip(): line for line in out.splitlines() if "| nms" in line}
    assert set(rows) == {"1,000", "6,000"}
    assert "2.00x" in rows["1,000"] and "1.64x-2.44x" in rows["1,000"]
    assert "1.00x ~" in rows["6,000"]  # the spread contains 1x
    assert "warning: run B: load average 3.0 on 2 cores" in out
    assert "1 (op, case, implementation) timed in only one" in out


def test_readme_headline_is_the_committed_results():
    table = headline_table()
    assert table in (REPO_ROOT / "README.md").read_text(), (
        "README's headline table differs from the committed results: paste the output of "
        "`python -m benchmarks.headline` into the README"
    )
