"""Time vs size per implementation, one log-log subplot per op (matplotlib, Agg backend)."""

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
        for impl in IMPLS:
            pts = sorted(
                (r.size, r.timing.median_ms) for r in timed if r.op == op.name and r.impl == impl
            )
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, label=impl, markersize=5, linewidth=1.3, **STYLE.get(impl, {}))
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
