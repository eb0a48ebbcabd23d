"""Best-seen traces as PNG (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from kubetune.analysis import TracePoint


def best_seen_png(
    points: Sequence[TracePoint], path: Path, *, metric: str, title: str
) -> Path:
    """Each trial's value and the best so far, against trials and against dollars."""
    fig = best_seen_figure(points, metric=metric, title=title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def best_seen_figure(
    points: Sequence[TracePoint], *, metric: str, title: str
) -> Figure:
    """The figure of best_seen_png; its legend sits above the plot, hiding no trial."""
    fig, (ax_trials, ax_cost) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    xs = [p.number for p in points]
    ax_trials.scatter(xs, [p.value for p in points], s=14, alpha=0.5, label="trial value")
    ax_trials.step(xs, [p.best for p in points], where="post", color="C3", label="best so far")
    ax_trials.set_xlabel("trials completed")
    ax_trials.set_ylabel(metric)
    ax_trials.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, frameon=False)
    ax_trials.grid(alpha=0.3)
    ax_cost.step([p.cost for p in points], [p.best for p in points], where="post", color="C3")
    ax_cost.set_xlabel("dollars spent")
    ax_cost.set_ylabel(f"best {metric}")
    ax_cost.grid(alpha=0.3)
    fig.suptitle(title)
    return fig
