"""The experiment state machine: what to launch, when to stop, and the status it records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from kubetune.api import ExperimentSpec, InvalidSpec, Trial, TrialState, load_experiment
from kubetune.cost import affordable, median_duration
from kubetune.engine import FinishReason, Plan, invalid_status, plan, summarize
from kubetune.space import Config, SearchSpace
from kubetune.suggest import Observation

from .manifests import document, make_spec

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
Sec = timedelta(seconds=1)


def at(seconds: float) -> datetime:
    return T0 + seconds * Sec


def configs(spec: ExperimentSpec, n: int, seed: int = 0) -> list[Config]:
    return SearchSpace(spec.parameters).sample(n, np.random.default_rng(seed))


def trial(spec: ExperimentSpec, index: int, state: TrialState, value: float | None = None,
          start: float | None = None, finish: float | None = None, gpus: int = 0) -> Trial:
    return Trial(
        index=index, parameters=configs(spec, 1, seed=1000 + index)[0], state=state, value=value,
        start_time=None if start is None else at(start),
        finish_time=None if finish is None else at(finish), gpus=gpus,
    )


class Recorder:
    """A suggester that records what the engine tells it and hands out fresh configs."""

    def __init__(self, spec: ExperimentSpec) -> None:
        self.space = SearchSpace(spec.parameters)
        self.calls: list[dict[str, Any]] = []

    def suggest(self, history: Sequence[Observation], pending: Sequence[Mapping[str, Any]],
                n: int, issued: Sequence[Mapping[str, Any]] = ()) -> list[Config]:
        self.calls.append({"history": list(history), "pending": list(pending), "n": n,
                           "issued": list(issued)})
        return self.space.sample(n, np.random.default_rng(len(self.calls)))


# ------------------------------------------------------------------------------ launching
def test_first_plan_launches_parallelism_trials() -> None:
    spec = make_spec(budget={"maxTrials": 10, "parallelism": 3})
    decision = plan(spec, [], T0)
    assert decision.finished is None and decision.kill == []
    assert [t.index for t in decision.launch] == [0, 1, 2]
    assert all(t.state == TrialState.pending for t in decision.launch)
    assert all(t.gpus == 2 for t in decision.launch)  # from the template's nvidia.com/gpu limit
    space = SearchSpace(spec.parameters)
    assert len({space.key(t.parameters) for t in decision.launch}) == 3
    assert all(space.contains(t.parameters) for t in decision.launch)


def test_free_slots_are_filled_with_indices_after_the_highest() -> None:
    spec = make_spec(budget={"maxTrials": 10, "parallelism": 3})
    trials = [
        trial(spec, 0, TrialState.succeeded, 0.5, 0, 10),
        trial(spec, 5, TrialState.running, start=20),
        trial(spec, 2, TrialState.killed, start=5, finish=8),
    ]
    decision = plan(spec, trials, at(30))
    assert [t.index for t in decision.launch] == [6, 7]


def test_no_launch_while_every_slot_is_busy() -> None:
    spec = make_spec(budget={"maxTrials": 10, "parallelism": 2})
    trials = [trial(spec, 0, TrialState.running, start=0), trial(spec, 1, TrialState.pending)]
    assert plan(spec, trials, at(5)) == Plan()


def test_launches_stop_at_max_trials_and_killed_ones_do_not_count() -> None:
    spec = make_spec(budget={"maxTrials": 4, "parallelism": 3})
    trials = [
        trial(spec, 0, TrialState.succeeded, 0.5, 0, 10),
        trial(spec, 1, TrialState.failed, None, 0, 10),
        trial(spec, 2, TrialState.succeeded, 0.6, 0, 10),
        trial(spec, 3, TrialState.killed, None, 0, 3),
        trial(spec, 4, TrialState.killed, None, 0, 3),
    ]
    decision = plan(spec, trials, at(20))
    assert [t.index for t in decision.launch] == [5]  # min(3 - 0, 4 - 3)


def test_max_trials_finishes_only_when_nothing_is_active() -> None:
    spec = make_spec(budget={"maxTrials": 3, "parallelism": 3})
    done = [trial(spec, i, TrialState.succeeded, 0.1 * i, 0, 10) for i in range(2)]
    running = trial(spec, 2, TrialState.running, start=5)
    waiting = plan(spec, [*done, running], at(12))
    assert waiting == Plan()  # nothing to launch, nothing to kill, not finished
    finished = running.model_copy(update={"state": TrialState.succeeded, "value": 0.9,
                                          "finish_time": at(15)})
    decision = plan(spec, [*done, finished], at(15))
    assert decision.finished == FinishReason.max_trials
    assert decision.launch == [] and decision.kill == []
    # killed trials do not hold the experiment open
    decision = plan(spec, [*done, finished, trial(spec, 3, TrialState.killed, None, 1, 2)],
                    at(15))
    assert decision.finished == FinishReason.max_trials


@pytest.mark.parametrize(("goal", "target", "values", "reached"), [
    ("maximize", 0.9, [0.5, 0.95], True),
    ("maximize", 0.9, [0.5, 0.9], True),
    ("maximize", 0.9, [0.5, 0.89], False),
    ("minimize", 0.2, [0.5, 0.15], True),
    ("minimize", 0.2, [0.5, 0.25], False),
])
def test_target_reached_kills_the_active_trials(goal: str, target: float, values: list[float],
                                                reached: bool) -> None:
    spec = make_spec(objective={"metric": "val_accuracy", "goal": goal, "target": target},
                     budget={"maxTrials": 20, "parallelism": 4})
    trials = [trial(spec, i, TrialState.succeeded, v, 0, 10) for i, v in enumerate(values)]
    trials += [trial(spec, 2, TrialState.running, start=5), trial(spec, 3, TrialState.pending)]
    decision = plan(spec, trials, at(20))
    if reached:
        assert decision.finished == FinishReason.target
        assert sorted(decision.kill) == [2, 3]
        assert decision.launch == []
        assert "trial 1 reached" in decision.message
    else:
        assert decision.finished is None
        assert [t.index for t in decision.launch] == [4, 5]


def test_max_failed_trials() -> None:
    spec = make_spec(budget={"maxTrials": 20, "parallelism": 2, "maxFailedTrials": 1})
    one = [trial(spec, 0, TrialState.failed, None, 0, 5), trial(spec, 1, TrialState.running,
                                                                start=0)]
    assert plan(spec, one, at(6)).finished is None  # one failure is tolerated
    two = [*one, trial(spec, 2, TrialState.failed, None, 6, 8)]
    decision = plan(spec, two, at(8))
    assert decision.finished == FinishReason.max_failed
    assert decision.kill == [1]
    assert "more than maxFailedTrials=1" in decision.message
    status = summarize(spec, two, at(8), finished=decision.finished, message=decision.message)
    assert status.phase == "Failed"
    failed = status.condition("Failed")
    assert failed is not None and failed.status == "True"
    assert failed.reason == "MaxFailedTrialsReached"
    assert status.condition("Succeeded") is None


def test_max_failed_zero_fails_on_the_first_failure() -> None:
    spec = make_spec(budget={"maxTrials": 5, "maxFailedTrials": 0})
    decision = plan(spec, [trial(spec, 0, TrialState.failed, None, 0, 1)], at(1))
    assert decision.finished == FinishReason.max_failed


def test_search_space_exhausted() -> None:
    spec = make_spec(parameters=[{"name": "opt", "type": "categorical", "values": ["a", "b"]}],
                     budget={"maxTrials": 5, "parallelism": 3})
    first = plan(spec, [], T0)
    assert sorted(t.parameters["opt"] for t in first.launch) == ["a", "b"]
    trials = [t.model_copy(update={"state": TrialState.succeeded, "value": 0.5,
                                   "start_time": T0, "finish_time": at(1)}) for t in first.launch]
    trials[1] = trials[1].model_copy(update={"state": TrialState.killed, "value": None})
    decision = plan(spec, trials, at(2))  # a killed configuration is not issued again either
    assert decision.finished == FinishReason.exhausted
    assert decision.finished.succeeded


# ------------------------------------------------------------------- what the model sees
def test_the_suggester_gets_observations_pending_and_everything_issued() -> None:
    spec = make_spec(budget={"maxTrials": 10, "parallelism": 3})
    trials = [
        trial(spec, 0, TrialState.succeeded, 0.7, 0, 10),
        trial(spec, 1, TrialState.failed, None, 0, 10),
        trial(spec, 2, TrialState.killed, None, 0, 4),
        trial(spec, 3, TrialState.running, start=10),
    ]
    recorder = Recorder(spec)
    decision = plan(spec, trials, at(20), suggester=recorder)
    [call] = recorder.calls
    assert call["n"] == 2
    assert [(o.config, o.value) for o in call["history"]] == [
        (trials[0].parameters, 0.7), (trials[1].parameters, None)]
    assert call["pending"] == [trials[3].parameters]
    assert call["issued"] == [t.parameters for t in trials]  # killed included: never repeated
    assert [t.index for t in decision.launch] == [4, 5]


# -------------------------------------------------------------------------------- budget
def _simulate(spec: ExperimentSpec, duration: float) -> tuple[list[list[int]], Plan,
                                                                   list[Trial], datetime]:
    """Drive plan() like a shell: every trial runs exactly ``duration`` seconds."""
    trials: dict[int, Trial] = {}
    launches: list[list[int]] = []
    now = T0
    for _ in range(100):
        decision = plan(spec, list(trials.values()), now)
        if decision.finished is not None:
            return launches, decision, list(trials.values()), now
        launches.append([t.index for t in decision.launch])
        for t in decision.launch:  # shells record start and finish times, not durations
            trials[t.index] = t.model_copy(update={"state": TrialState.running,
                                                   "start_time": now})
        now += duration * Sec
        for i, t in list(trials.items()):
            if t.state == TrialState.running and t.start_time is not None and \
                    (now - t.start_time) >= duration * Sec:
                trials[i] = t.model_copy(update={"state": TrialState.succeeded,
                                                 "value": 0.5, "finish_time": now})
    raise AssertionError("the experiment never finished")


def test_budget_one_at_a_time_until_a_duration_is_known_then_the_median() -> None:
    # $1 per trial-second, 10 s trials: maxCost 30 covers exactly three trials
    spec = make_spec(budget={"maxTrials": 10, "parallelism": 3, "maxCost": 30.0},
                     cost={"pricePerHour": 3600.0})
    launches, decision, trials, now = _simulate(spec, 10)
    assert launches == [[0], [1, 2]]  # no estimate: one; then (30 - 10) / 10 = 2 more
    assert decision.finished == FinishReason.budget
    status = summarize(spec, trials, now, finished=decision.finished, message=decision.message)
    assert status.total_cost == pytest.approx(30.0)
    assert status.remaining_budget == pytest.approx(0.0)
    assert status.phase == "Succeeded"
    assert status.condition("Succeeded").reason == "BudgetExhausted"  # type: ignore[union-attr]


def test_budget_that_cannot_cover_another_trial_finishes_the_experiment() -> None:
    spec = make_spec(budget={"maxTrials": 10, "parallelism": 3, "maxCost": 35.0},
                     cost={"pricePerHour": 3600.0})
    launches, decision, trials, _ = _simulate(spec, 10)
    assert launches == [[0], [1, 2]]
    assert decision.finished == FinishReason.budget
    assert "cannot cover another trial" in decision.message
    assert sum(1 for t in trials if t.state == TrialState.succeeded) == 3


def test_budget_uses_the_trial_timeout_as_the_first_estimate() -> None:
    spec = make_spec(budget={"maxTrials": 10, "parallelism": 4, "maxCost": 30.0,
                             "trialTimeout": 10}, cost={"pricePerHour": 3600.0})
    launches, decision, _, _ = _simulate(spec, 10)
    assert launches == [[0, 1, 2]]
    assert decision.finished == FinishReason.budget


def test_budget_spent_while_running_kills_the_trials() -> None:
    spec = make_spec(budget={"maxTrials": 10, "parallelism": 2, "maxCost": 30.0},
                     cost={"pricePerHour": 3600.0})
    trials = [trial(spec, 0, TrialState.succeeded, 0.5, 0, 10),
              trial(spec, 1, TrialState.running, start=10)]
    assert plan(spec, trials, at(20)).finished is None
    decision = plan(spec, trials, at(30))  # 10 + 20 dollars: the money is gone
    assert decision.finished == FinishReason.budget
    assert decision.kill == [1]


def test_no_limit_or_no_price_means_no_budget_rule() -> None:
    free = make_spec(budget={"maxTrials": 10, "parallelism": 3, "maxCost": 1.0},
                     cost={"pricePerHour": 0.0})
    assert len(plan(free, [], T0).launch) == 3
    unlimited = make_spec(budget={"maxTrials": 10, "parallelism": 3})
    assert affordable(unlimited, [], T0, 2.6, 3) == 3


def test_median_duration_from_times_or_recorded_durations() -> None:
    spec = make_spec()
    trials = [
        trial(spec, 0, TrialState.succeeded, 0.5, 0, 10),
        trial(spec, 1, TrialState.failed, None, 0, 40),
        trial(spec, 2, TrialState.succeeded, 0.5, 0, 20),
        trial(spec, 3, TrialState.killed, None, 0, 1000),  # killed: not an estimate
        trial(spec, 4, TrialState.running, start=0),
        Trial(index=5, parameters={}, state=TrialState.succeeded, value=1.0,
              duration_seconds=30.0),
    ]
    assert median_duration(trials) == 25.0
    assert median_duration(trials[3:5]) is None


# -------------------------------------------------------------------------------- status
def test_summarize_counts_best_cost_and_gpu_seconds() -> None:
    spec = make_spec(budget={"maxTrials": 10, "parallelism": 3, "maxCost": 5.0})
    trials = [
        trial(spec, 0, TrialState.succeeded, 0.81, start=0, finish=90, gpus=2),
        trial(spec, 1, TrialState.failed, None, start=10, finish=40, gpus=2),
        trial(spec, 2, TrialState.running, start=60, gpus=2),
        trial(spec, 3, TrialState.pending, gpus=2),
        trial(spec, 4, TrialState.killed, None, start=5, finish=20, gpus=2),
        trial(spec, 5, TrialState.succeeded, 0.93, start=20, finish=50, gpus=2),
    ]
    now = at(120)
    status = summarize(spec, list(reversed(trials)), now, generation=4)
    price = 2.60
    seconds = {0: 90.0, 1: 30.0, 2: 60.0, 4: 15.0, 5: 30.0}
    by_index = {t.index: t for t in status.trials}
    assert [t.index for t in status.trials] == [0, 1, 2, 3, 4, 5]  # sorted by index
    for index, secs in seconds.items():
        assert by_index[index].duration_seconds == secs
        assert by_index[index].cost == pytest.approx(secs * price / 3600, abs=1e-6)
    assert by_index[3].duration_seconds is None and by_index[3].cost is None  # pending: free
    assert status.total_cost == pytest.approx(sum(seconds.values()) * price / 3600, abs=2e-6)
    assert status.remaining_budget == pytest.approx(5.0 - status.total_cost, abs=1e-9)
    assert status.gpu_seconds == sum(seconds.values()) * 2
    assert status.price_per_hour == price
    assert status.best is not None
    assert (status.best.trial, status.best.value) == (5, 0.93)
    assert status.best.parameters == trials[5].parameters
    c = status.counts
    assert (c.succeeded, c.failed, c.running, c.pending, c.killed, c.total) == (2, 1, 1, 1, 1, 6)
    assert status.progress == "3/10"
    assert status.phase == "Running"
    assert status.start_time == T0
    assert status.completion_time is None
    assert status.observed_generation == 4
    running = status.condition("Running")
    assert running is not None and running.status == "True" and running.reason == "TrialsRunning"
    valid = status.condition("Valid")
    assert valid is not None and valid.status == "True" and valid.observed_generation == 4


def test_cost_is_exact_for_an_hour() -> None:
    spec = make_spec(cost={"pricePerHour": 2.60})
    status = summarize(spec, [trial(spec, 0, TrialState.succeeded, 0.5, 0, 3600)], at(7200))
    assert status.total_cost == 2.60
    assert status.trials[0].cost == 2.60


def test_minimize_best_and_default_price() -> None:
    spec = make_spec(objective={"metric": "val_loss", "goal": "minimize"}, cost={})
    trials = [trial(spec, 0, TrialState.succeeded, 0.4, 0, 1800),
              trial(spec, 1, TrialState.succeeded, 0.2, 0, 1800),
              trial(spec, 2, TrialState.succeeded, 0.3, 0, 1800)]
    status = summarize(spec, trials, at(1800), default_price=1.5)
    assert status.best is not None and status.best.trial == 1
    assert status.price_per_hour == 1.5
    assert status.total_cost == pytest.approx(3 * 0.75)
    assert summarize(spec, trials, at(1800)).total_cost == 0.0  # no price at all: free


def test_conditions_keep_their_transition_time_until_the_status_changes() -> None:
    spec = make_spec(budget={"maxTrials": 2, "parallelism": 2})
    running = [trial(spec, 0, TrialState.running, start=0),
               trial(spec, 1, TrialState.running, start=0)]
    s1 = summarize(spec, running, at(1), generation=1)
    assert s1.condition("Running").last_transition_time == at(1)  # type: ignore[union-attr]
    s2 = summarize(spec, running, at(2), previous=s1, generation=1)
    assert s2.condition("Running").last_transition_time == at(1)  # type: ignore[union-attr]
    assert s2.condition("Valid").last_transition_time == at(1)  # type: ignore[union-attr]
    done = [t.model_copy(update={"state": TrialState.succeeded, "value": 0.5,
                                 "finish_time": at(3)}) for t in running]
    s3 = summarize(spec, done, at(3), previous=s2, generation=1)
    idle = s3.condition("Running")
    assert idle is not None and idle.status == "False" and idle.reason == "Idle"
    assert idle.last_transition_time == at(3)
    s4 = summarize(spec, done, at(4), previous=s3, generation=1,
                   finished=FinishReason.max_trials, message="all 2 trials completed")
    assert s4.phase == "Succeeded"
    assert s4.completion_time == at(4)
    stopped = s4.condition("Running")
    assert stopped is not None and stopped.reason == "MaxTrialsReached"
    assert stopped.last_transition_time == at(3)  # still False: no transition
    succeeded = s4.condition("Succeeded")
    assert succeeded is not None and succeeded.status == "True"
    assert succeeded.last_transition_time == at(4)
    assert succeeded.message == "all 2 trials completed"
    # later reconciles keep the outcome and its times
    s5 = summarize(spec, done, at(50), previous=s4, generation=1)
    assert s5.phase == "Succeeded" and s5.completion_time == at(4)
    assert s5.condition("Succeeded").last_transition_time == at(4)  # type: ignore[union-attr]
    assert [c.type for c in s5.conditions] == ["Valid", "Running", "Succeeded"]


def test_new_experiment_is_created() -> None:
    spec = make_spec()
    status = summarize(spec, [], T0)
    assert status.phase == "Created"
    assert status.progress == "0/10"
    assert status.best is None and status.total_cost == 0.0 and status.start_time is None


def test_invalid_status_names_the_field() -> None:
    doc = document()
    doc["spec"]["budget"]["parallelism"] = 0
    with pytest.raises(InvalidSpec) as caught:
        load_experiment(doc)
    spec = make_spec()
    previous = summarize(spec, [trial(spec, 0, TrialState.succeeded, 0.5, 0, 10)], at(10),
                         generation=1)
    status = invalid_status(caught.value.problems, at(20), previous=previous, generation=2)
    assert status.phase == "Invalid"
    assert status.observed_generation == 2
    valid = status.condition("Valid")
    assert valid is not None and valid.status == "False" and valid.reason == "InvalidSpec"
    assert "spec.budget.parallelism" in valid.message
    assert valid.last_transition_time == at(20)
    assert valid.observed_generation == 2
    assert [t.index for t in status.trials] == [0]  # the record is kept
