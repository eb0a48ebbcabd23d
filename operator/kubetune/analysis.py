"""Cost analysis of a finished (or running) experiment: best-seen trace and dollars-to-target.

Pure functions over the status, used by ``kubetune report``, the local runner's
summary, the metrics exporter and the benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from kubetune.api.spec import ExperimentSpec
from kubetune.api.status import Trial, TrialState


@dataclass(frozen=True)
class TracePoint:
    """The record after the ``number``-th completed trial (in order of completion)."""

    number: int
    trial: int
    value: float | None  # this trial's value (None: failed)
    best: float | None  # best so far
    cost: float  # dollars spent by all trials completed so far
    improved: bool  # this trial set a new best


def _completion_key(trial: Trial) -> tuple[datetime | float, int]:
    return (trial.finish_time.timestamp() if trial.finish_time else float("inf"), trial.index)


def best_seen_trace(spec: ExperimentSpec, trials: Sequence[Trial]) -> list[TracePoint]:
    """Best-so-far after each completed trial, with the money spent to get there."""
    done = sorted(
        (t for t in trials if t.state in (TrialState.succeeded, TrialState.failed)),
        key=_completion_key,
    )
    points: list[TracePoint] = []
    best: float | None = None
    spent = 0.0
    for number, trial in enumerate(done, start=1):
        spent += trial.cost or 0.0
        value = trial.value if trial.state == TrialState.succeeded else None
        improved = value is not None and (best is None or spec.objective.better(value, best))
        if improved:
            best = value
        points.append(TracePoint(number, trial.index, value, best, round(spent, 6), improved))
    return points


def cost_to_reach(points: Sequence[TracePoint], level: float, maximize: bool) -> TracePoint | None:
    """The first point whose best-so-far reaches ``level`` (None: never reached)."""
    for point in points:
        if point.best is not None and (point.best >= level if maximize else point.best <= level):
            return point
    return None
