"""The cost model: a trial is charged for its running time times the price.

- Charged time runs from the trial container's start to its end (or to now
  while it runs); time spent Pending (waiting for a GPU, pulling an image) is
  not charged. A retried Job is charged for every attempt's running time,
  since the start is its first container start and the end its last.
- Cost = charged seconds / 3600 x the trial's price. The trial's price is its
  own ``pricePerHour`` when the operator resolved one from the node it ran on
  (per-GPU-type prices keyed by a node label), else the experiment's
  ``cost.pricePerHour``, else the operator's default, else 0.
  GPU-seconds = charged seconds x GPUs requested.
- Budget: see :func:`affordable`. Trials not yet placed on a node have no
  price of their own, so estimates for new trials use the experiment's price.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from datetime import datetime

from kubetune.api.spec import ExperimentSpec
from kubetune.api.status import Trial, TrialState


def effective_price(spec: ExperimentSpec, default: float | None = None) -> float:
    """The experiment's price per trial-hour, else the operator's default, else 0."""
    if spec.cost.price_per_hour is not None:
        return spec.cost.price_per_hour
    return default or 0.0


def running_seconds(trial: Trial, now: datetime) -> float:
    if trial.start_time is None:
        return 0.0
    end = trial.finish_time or now
    return max(0.0, (end - trial.start_time).total_seconds())


def dollars(seconds: float, price_per_hour: float) -> float:
    return seconds / 3600.0 * price_per_hour


def trial_price(trial: Trial, price: float) -> float:
    """The price charged for ``trial``: its own (per-GPU-type) price if set, else ``price``."""
    return trial.price_per_hour if trial.price_per_hour is not None else price


def trial_cost(trial: Trial, now: datetime, price: float) -> float:
    """Dollars charged for ``trial`` up to ``now`` (``price``: the experiment's price)."""
    return dollars(running_seconds(trial, now), trial_price(trial, price))


def ran_seconds(trial: Trial) -> float | None:
    """How long a finished trial ran: finish - start when both are recorded, else the
    charged ``durationSeconds`` (shells record times; only the status carries durations)."""
    if trial.start_time is not None and trial.finish_time is not None:
        return max(0.0, (trial.finish_time - trial.start_time).total_seconds())
    return trial.duration_seconds


def median_duration(trials: Sequence[Trial]) -> float | None:
    """Median running time of trials that ran to an outcome, the estimate for the next one."""
    done = [
        seconds
        for t in trials
        if t.state in (TrialState.succeeded, TrialState.failed)
        and (seconds := ran_seconds(t)) is not None
    ]
    return statistics.median(done) if done else None


def affordable(
    spec: ExperimentSpec, trials: Sequence[Trial], now: datetime, price: float, wanted: int
) -> int:
    """How many of ``wanted`` new trials ``budget.maxCost`` can still cover.

    The rule: projected = cost of finished trials + for each active trial the
    larger of its cost so far and the estimate + the estimate for each new one,
    and projected must stay within maxCost. The estimate is the median running
    time of finished trials (else ``trialTimeout``) x price. With no estimate
    yet, one trial at a time is run until the first one finishes.
    """
    limit = spec.budget.max_cost
    if limit is None or price <= 0 or wanted <= 0:
        return wanted
    seconds = median_duration(trials)
    if seconds is None:
        seconds = spec.budget.trial_timeout_seconds
    estimate = dollars(seconds, price) if seconds is not None else None
    committed = 0.0
    active = 0
    for trial in trials:
        so_far = trial_cost(trial, now, price)
        if trial.state in (TrialState.pending, TrialState.running):
            active += 1
            committed += max(so_far, estimate or 0.0)
        else:
            committed += so_far
    if estimate is None:
        return 1 if active == 0 and committed < limit else 0
    if estimate <= 0:
        return wanted if committed < limit else 0
    room = math.floor((limit - committed) / estimate + 1e-9)
    return max(0, min(wanted, room))
