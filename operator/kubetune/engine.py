"""The experiment state machine: (spec, trials, now) -> what to do, and the status.

Pure: no Kubernetes, no processes, no files. The operator and the local
runner are shells that observe trials, call :func:`plan`, carry out its
actions, and write :func:`summarize`'s status.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from kubetune.api.spec import ExperimentSpec
from kubetune.api.status import (
    Best,
    Condition,
    ConditionStatus,
    Counts,
    ExperimentStatus,
    Trial,
    TrialState,
)
from kubetune.cost import affordable, dollars, effective_price, running_seconds, trial_cost, trial_price
from kubetune.space import SearchSpace
from kubetune.suggest import Observation, Suggester, make_suggester


class FinishReason(StrEnum):
    max_trials = "MaxTrialsReached"
    target = "TargetReached"
    budget = "BudgetExhausted"
    max_failed = "MaxFailedTrialsReached"
    exhausted = "SearchSpaceExhausted"

    @property
    def succeeded(self) -> bool:
        return self != FinishReason.max_failed


@dataclass(frozen=True)
class Plan:
    """What a shell should do now."""

    launch: list[Trial] = field(default_factory=list)  # new trials, state Pending
    kill: list[int] = field(default_factory=list)  # indices of active trials to stop
    finished: FinishReason | None = None
    message: str = ""


# ----------------------------------------------------------------------------- helpers
def is_finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _completion_order(trial: Trial) -> tuple[float, int]:
    return (trial.finish_time.timestamp() if trial.finish_time else math.inf, trial.index)


def best_trial(spec: ExperimentSpec, trials: Sequence[Trial]) -> Trial | None:
    """The best trial; among equal values, the first to finish (as the best-seen trace has it)."""
    best: Trial | None = None
    for trial in sorted(trials, key=_completion_order):
        if trial.state != TrialState.succeeded or not is_finite(trial.value):
            continue
        if best is None or spec.objective.better(trial.value, best.value):  # type: ignore[arg-type]
            best = trial
    return best


def count(trials: Sequence[Trial]) -> Counts:
    counts = Counts(total=len(trials))
    for trial in trials:
        name = TrialState(trial.state).name
        setattr(counts, name, getattr(counts, name) + 1)
    return counts


def observations(trials: Sequence[Trial]) -> list[Observation]:
    """The GP's record: succeeded trials with their value, failed ones with None."""
    out = []
    for trial in sorted(trials, key=lambda t: t.index):
        if trial.state == TrialState.succeeded and is_finite(trial.value):
            out.append(Observation(trial.parameters, trial.value))
        elif trial.state == TrialState.failed:
            out.append(Observation(trial.parameters, None))
    return out


def spent(trials: Sequence[Trial], now: datetime, price: float) -> float:
    return sum(trial_cost(t, now, price) for t in trials)


def finish_reason(
    spec: ExperimentSpec, trials: Sequence[Trial], now: datetime, price: float
) -> tuple[FinishReason | None, str]:
    """Whether the experiment is over (regardless of what is still running), and why."""
    counts = count(trials)
    if counts.failed > spec.budget.max_failed_trials:
        return FinishReason.max_failed, (
            f"{counts.failed} trials failed, more than maxFailedTrials="
            f"{spec.budget.max_failed_trials}"
        )
    best = best_trial(spec, trials)
    if best is not None and spec.objective.reached(best.value):  # type: ignore[arg-type]
        return FinishReason.target, (
            f"trial {best.index} reached {spec.objective.metric}={best.value:g} "
            f"(target {spec.objective.target:g})"
        )
    limit = spec.budget.max_cost
    if limit is not None and spent(trials, now, price) >= limit > 0:
        return FinishReason.budget, f"spent ${spent(trials, now, price):.2f} of maxCost ${limit:.2f}"
    active = counts.pending + counts.running
    if counts.completed >= spec.budget.max_trials and active == 0:
        return FinishReason.max_trials, f"all {spec.budget.max_trials} trials completed"
    return None, ""


# ------------------------------------------------------------------------------- plan
def plan(
    spec: ExperimentSpec,
    trials: Sequence[Trial],
    now: datetime,
    *,
    default_price: float | None = None,
    suggester: Suggester | None = None,
) -> Plan:
    """Decide the next actions from the record alone (level-triggered)."""
    price = effective_price(spec, default_price)
    active = [t for t in trials if TrialState(t.state).active]
    reason, message = finish_reason(spec, trials, now, price)
    if reason is not None:
        return Plan(kill=[t.index for t in active], finished=reason, message=message)

    counted = sum(1 for t in trials if t.state != TrialState.killed)
    wanted = min(spec.budget.parallelism - len(active), spec.budget.max_trials - counted)
    wanted = affordable(spec, trials, now, price, max(0, wanted))
    if wanted <= 0:
        if not active:  # nothing running and nothing affordable: the money is gone
            limit = spec.budget.max_cost or 0.0
            return Plan(finished=FinishReason.budget, message=(
                f"spent ${spent(trials, now, price):.2f}; maxCost ${limit:.2f} cannot cover "
                "another trial"
            ))
        return Plan()

    space = SearchSpace(spec.parameters)
    suggester = suggester or make_suggester(space, spec.algorithm, spec.objective.goal)
    configs = suggester.suggest(
        observations(trials),
        [t.parameters for t in active],
        wanted,
        issued=[t.parameters for t in trials],
    )
    if not configs and not active:
        return Plan(finished=FinishReason.exhausted, message=(
            f"every one of the {space.size():g} configurations has been tried"
        ))
    next_index = max((t.index for t in trials), default=-1) + 1
    gpus = spec.trial_template.gpus()
    launch = [
        Trial(index=next_index + i, parameters=config, state=TrialState.pending, gpus=gpus)
        for i, config in enumerate(configs)
    ]
    return Plan(launch=launch)


# ---------------------------------------------------------------------------- status
def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> list[Condition]:
    """Upsert a condition, keeping lastTransitionTime when its status did not change."""
    out = []
    found = False
    for condition in conditions:
        if condition.type == type_:
            found = True
            changed = condition.status != status
            condition = Condition(
                type=type_, status=status, reason=reason, message=message,
                last_transition_time=now if changed else condition.last_transition_time or now,
                observed_generation=generation,
            )
        out.append(condition)
    if not found:
        out.append(Condition(
            type=type_, status=status, reason=reason, message=message,
            last_transition_time=now, observed_generation=generation,
        ))
    return out


def account(trials: Sequence[Trial], now: datetime, price: float) -> list[Trial]:
    """Trials with their charged duration and cost brought up to ``now``."""
    out = []
    for trial in trials:
        seconds = running_seconds(trial, now)
        charged = trial.start_time is not None
        out.append(trial.model_copy(update={
            "duration_seconds": round(seconds, 3) if charged else None,
            "cost": round(dollars(seconds, trial_price(trial, price)), 6) if charged else None,
        }))
    return sorted(out, key=lambda t: t.index)


def summarize(
    spec: ExperimentSpec,
    trials: Sequence[Trial],
    now: datetime,
    *,
    previous: ExperimentStatus | None = None,
    generation: int | None = None,
    finished: FinishReason | None = None,
    message: str = "",
    default_price: float | None = None,
) -> ExperimentStatus:
    """The status to record: trials with costs, best, counts, money, conditions."""
    previous = previous or ExperimentStatus()
    price = effective_price(spec, default_price)
    accounted = account(trials, now, price)
    counts = count(accounted)
    best = best_trial(spec, accounted)
    total = round(sum(t.cost or 0.0 for t in accounted), 6)
    conditions = set_condition(
        list(previous.conditions), "Valid", ConditionStatus.true, "SpecValid",
        "the spec is valid", now, generation,
    )
    done_before = previous.condition("Succeeded") or previous.condition("Failed")
    if finished is not None:
        ok = finished.succeeded
        conditions = set_condition(conditions, "Running", ConditionStatus.false, finished.value,
                                   message, now, generation)
        conditions = set_condition(
            conditions, "Succeeded" if ok else "Failed", ConditionStatus.true, finished.value,
            message, now, generation,
        )
        phase = "Succeeded" if ok else "Failed"
        completion = previous.completion_time or now
    elif done_before is not None and done_before.status == ConditionStatus.true:
        phase, completion = previous.phase, previous.completion_time
    else:
        running = counts.pending + counts.running > 0
        conditions = set_condition(
            conditions, "Running", ConditionStatus.true if running else ConditionStatus.false,
            "TrialsRunning" if running else "Idle",
            f"{counts.running} running, {counts.pending} pending", now, generation,
        )
        phase = "Running" if accounted else "Created"
        completion = None
    starts = [t.start_time for t in accounted if t.start_time is not None]
    return ExperimentStatus(
        phase=phase,
        progress=f"{counts.completed}/{spec.budget.max_trials}",
        conditions=conditions,
        trials=accounted,
        best=Best(trial=best.index, value=best.value, parameters=best.parameters)  # type: ignore[arg-type]
        if best else None,
        counts=counts,
        total_cost=total,
        remaining_budget=None if spec.budget.max_cost is None else round(
            spec.budget.max_cost - total, 6),
        gpu_seconds=round(sum((t.duration_seconds or 0.0) * t.gpus for t in accounted), 3),
        price_per_hour=price,
        start_time=previous.start_time or (min(starts) if starts else None),
        completion_time=completion,
        observed_generation=generation,
    )


def invalid_status(
    problems: Sequence[Any], now: datetime, previous: ExperimentStatus | None = None,
    generation: int | None = None,
) -> ExperimentStatus:
    """Status for a spec that failed validation: a Valid=False condition naming the field."""
    previous = previous or ExperimentStatus()
    message = "; ".join(str(p) for p in problems)
    conditions = set_condition(list(previous.conditions), "Valid", ConditionStatus.false,
                               "InvalidSpec", message, now, generation)
    return previous.model_copy(update={
        "phase": "Invalid", "conditions": conditions, "observed_generation": generation,
    })
