"""The best-seen PNG's legend must not hide trials."""

from __future__ import annotations

import matplotlib.pyplot as plt

from kubetune.analysis import TracePoint
from kubetune.plots import best_seen_figure


def test_the_legend_sits_outside_the_plotted_trials() -> None:
    # A maximized metric whose last trials diverged: low values at the right end,
    # exactly where the legend used to sit ("lower right").
    values = [0.9, 0.95, 0.97, 0.96, 0.98, 0.5, 0.1, 0.08, 0.076, 0.087]
    points, best = [], 0.0
    for i, v in enumerate(values, 1):
        best = max(best, v)
        points.append(TracePoint(i, i - 1, v, best, 0.05 * i, v == best))
    fig = best_seen_figure(points, metric="val_accuracy", title="t")
    try:
        fig.canvas.draw()
        ax = fig.axes[0]
        legend = ax.get_legend().get_window_extent()
        plot_area = ax.get_window_extent()
        assert not legend.overlaps(plot_area), (legend, plot_area)
    finally:
        plt.close(fig)
