"""Time vs size, one log-log subplot per op and one line per implementation (and per case series,
e.g. NCHW/NHWC), labelled axes with units (matplotlib, Agg backend). A thick grey line marks
each series' roofline bound (the least time the measured peaks allow), where the run has one."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from .registry import IMPLS, OpBench
from .runner import FAILED, Result

STYLE = {
    "reference": dict(color="#7f7f7f", marker="s", linestyle=":"),
    "cpu": dict(color="#1f77b4", marker="o", linestyle="-"),
    "torchvision-cpu": dict(color="#1f77b4", marker="x", linestyle="--"),
    "cuda": dict(color="#2ca02c", marker="o", linestyle="-"),
    "torchvision-cuda": dict(color="#2ca02c", marker="x", linestyle="--"),
}


def plot_results(
    path: Path, ops: Sequence[OpBench], results: Sequence[Result], title: str = ""
) -> bool:
    """Write the figure; returns False when there is nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [r for r in results if r.status not in FAILED and r.timing is not None]
    ops = [op for op in ops if any(r.op == op.name for r in timed)]
    if not ops:
        return False
    ncols = min(3, len(ops))
    nrows = math.ceil(len(ops) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.9 * nrows), squeeze=False)
    for ax, op in zip(axes.flat, ops):
        series = list(dict.fromkeys(c.series for c in op.cases))
        of_case = {c.label: c.series for c in op.cases}
        for impl in IMPLS:
            for i, name in enumerate(series):
                pts = sorted(
                    (r.size, r.timing.median_ms)
                    for r in timed
                    if r.op == op.name and r.impl == impl and of_case.get(r.case, "") == name
                )
                if not pts:
                    continue
                xs, ys = zip(*pts)
                style = dict(STYLE.get(impl, {}))
                if i % 2:  # a second series (NHWC...) of one implementation: hollow, dash-dot
                    dashed = style.get("linestyle") == "--"
                    style.update(markerfacecolor="none", linestyle=":" if dashed else "-.")
                label = f"{impl} {name}".strip()
                ax.plot(xs, ys, label=label, markersize=5, linewidth=1.3, **style)
        for i, name in enumerate(series):
            for kind, pts in _bounds(timed, op.name, of_case, name).items():
                xs, ys = zip(*pts)
                label = f"roofline bound {kind} {name}".replace("  ", " ").strip()
                dots = ":" if i % 2 else "-"
                ax.plot(xs, ys, dots, label=label, color="#bbbbbb", linewidth=2.5, zorder=0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(op.name, fontsize=11)
        ax.set_xlabel(op.size_unit)
        ax.set_ylabel("median time (ms)")
        ax.grid(True, which="major", alpha=0.35)
        ax.grid(True, which="minor", alpha=0.12)
        ax.legend(fontsize=7, loc="upper left")
    for ax in list(axes.flat)[len(ops) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _bounds(timed, op_name, of_case, series):
    """{device type: sorted (size, bound ms)} of one op's case series (the bound of a case is
    the same for every implementation on one device: same work, same peaks)."""
    out = {}
    for r in timed:
        bound = (r.roofline or {}).get("bound_ms")
        if r.op == op_name and bound and of_case.get(r.case, "") == series:
            out.setdefault(r.impl.rsplit("-", 1)[-1], {})[r.size] = bound
    return {kind: sorted(pts.items()) for kind, pts in out.items()}


def replot(json_path: Path) -> Path:
    """Redraw ``<stem>.png`` next to a results JSON from its figures (no re-run)."""
    import json

    from .registry import all_ops
    from .report import header_line
    from .timing import Timing

    doc = json.loads(Path(json_path).read_text())
    fields = set(Timing.__dataclass_fields__)
    results = [
        Result(
            r["op"],
            r["family"],
            r["size_label"],
            r["size"],
            r["size_unit"],
            r["impl"],
            r["status"],
            Timing(**{k: v for k, v in r.items() if k in fields}) if "median_ms" in r else None,
            roofline={"bound_ms": r["bound_ms"]} if r.get("bound_ms") else None,
        )
        for r in doc["results"]
    ]
    names = {r.op for r in results}
    png = Path(json_path).with_suffix(".png")
    title = header_line(doc).replace("**", "")
    plot_results(png, [op for op in all_ops() if op.name in names], results, title=title)
    return png


if __name__ == "__main__":
    import sys

    for arg in sys.argv[1:] or sys.exit("usage: python -m benchmarks.plot RESULTS.json..."):
        print(f"wrote {replot(Path(arg))}")
