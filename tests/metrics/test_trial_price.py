"""Per-trial prices: a trial priced by its node's GPU type is charged its own price."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kubetune.api.status import Trial, TrialState
from kubetune.cost import affordable, trial_price
from kubetune.engine import plan, summarize
from tests.support.experiments import small_experiment as experiment

T0 = datetime(2024, 5, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def finished(index: int, price: float | None) -> Trial:
    return Trial(index=index, parameters={"lr": 0.1 * (index + 1)}, state=TrialState.succeeded,
                 value=0.5, start_time=T0, finish_time=T0 + HOUR, gpus=1,
                 price_per_hour=price)


def test_trial_price_falls_back_to_the_experiment_price() -> None:
    assert trial_price(finished(0, None), 2.6) == 2.6
    assert trial_price(finished(0, 0.35), 2.6) == 0.35
    assert trial_price(finished(0, 0.0), 2.6) == 0.0  # a free node is free, not "unset"


def test_status_charges_each_trial_its_own_price() -> None:
    exp = experiment(max_cost=None)  # experiment price 2.6 $/h
    status = summarize(exp.spec, [finished(0, None), finished(1, 0.35), finished(2, 2.9)],
                       T0 + 2 * HOUR)
    assert [t.cost for t in status.trials] == [2.6, 0.35, 2.9]
    assert status.total_cost == pytest.approx(2.6 + 0.35 + 2.9)
    assert status.price_per_hour == 2.6


def test_budget_counts_per_trial_prices() -> None:
    """Spent with per-trial prices decides whether the budget is exhausted."""
    exp = experiment(max_cost=3.0)
    cheap = [finished(0, 0.35), finished(1, 0.35)]  # $0.70 spent, not $5.20
    assert affordable(exp.spec, cheap, T0 + 2 * HOUR, 2.6, 1) == 0  # estimate: 1 h x $2.6 > $2.3
    exp = experiment(max_cost=6.0)
    assert affordable(exp.spec, cheap, T0 + 2 * HOUR, 2.6, 2) == 2  # $0.70 + 2 x $2.60 <= $6
    decision = plan(exp.spec, cheap, T0 + 2 * HOUR)
    assert decision.finished is None and len(decision.launch) == 2
