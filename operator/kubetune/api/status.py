"""The TuningExperiment status: the durable record of every observation.

The status is what survives operator restarts: trials, the best one, counts
and money are all here, so metrics and reports are derived from it rather
than from in-memory counters.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from kubetune.api.spec import Model


class TrialState(StrEnum):
    pending = "Pending"  # created, not yet running (no charge)
    running = "Running"
    succeeded = "Succeeded"
    failed = "Failed"
    killed = "Killed"  # stopped by kubetune (experiment ended, interrupted): no observation

    @property
    def finished(self) -> bool:
        return self in (TrialState.succeeded, TrialState.failed, TrialState.killed)

    @property
    def active(self) -> bool:
        return self in (TrialState.pending, TrialState.running)


class Trial(Model):
    """One compact observation."""

    index: int = Field(ge=0, description="Trial number, from 0; the Job is <experiment>-<index>.")
    parameters: dict[str, Any] = Field(description="The configuration this trial ran.")
    state: TrialState = Field(description="Pending, Running, Succeeded, Failed or Killed.")
    value: float | None = Field(None, description="The objective metric, when Succeeded.")
    metrics: dict[str, float] | None = Field(
        None, description="Other numeric metrics the trial reported."
    )
    reason: str | None = Field(None, description="Why the trial failed or was killed.")
    message: str | None = Field(None, description="Details of the failure, truncated.")
    start_time: datetime | None = Field(None, description="When its container started running.")
    finish_time: datetime | None = Field(None, description="When it finished.")
    duration_seconds: float | None = Field(
        None, description="Running time charged (start to finish, or to now while running)."
    )
    gpus: int = Field(0, ge=0, description="GPUs the trial requests.")
    price_per_hour: float | None = Field(
        None, ge=0,
        description="Dollars per hour charged for this trial, when the operator resolved a "
        "per-GPU-type price from the node it ran on; unset: the experiment's price.",
    )
    cost: float | None = Field(None, description="Dollars charged for the trial so far.")

    @property
    def state_enum(self) -> TrialState:
        return TrialState(self.state)


class ConditionStatus(StrEnum):
    true = "True"
    false = "False"
    unknown = "Unknown"


class Condition(Model):
    """A condition following the Kubernetes API conventions."""

    type: str = Field(description="Valid, Running, Succeeded or Failed.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(description="CamelCase machine-readable reason.")
    message: str = Field("", description="Human-readable details.")
    last_transition_time: datetime | None = Field(
        None, description="When the status last changed."
    )
    observed_generation: int | None = Field(
        None, description="The spec generation this condition was computed from."
    )


class Best(Model):
    """The best trial so far."""

    trial: int = Field(description="Index of the best trial.")
    value: float = Field(description="Its objective value.")
    parameters: dict[str, Any] = Field(description="Its configuration.")


class Counts(Model):
    """Trials by state."""

    pending: int = Field(0, description="Created, waiting to run (not charged).")
    running: int = Field(0, description="Running now.")
    succeeded: int = Field(0, description="Finished with a finite objective value.")
    failed: int = Field(0, description="Failed: error, timeout, missing or NaN metric.")
    killed: int = Field(0, description="Stopped by kubetune; no observation, not counted.")
    total: int = Field(0, description="All trials.")

    @property
    def completed(self) -> int:
        """Trials that produced an outcome (counted against maxTrials)."""
        return self.succeeded + self.failed


class ExperimentStatus(Model):
    """Observed state of a TuningExperiment."""

    phase: str | None = Field(
        None, description="Created, Running, Succeeded, Failed or Invalid (summary of conditions)."
    )
    progress: str | None = Field(None, description="Completed trials / maxTrials.")
    conditions: list[Condition] = Field(default_factory=list, description="Conditions.")
    trials: list[Trial] = Field(default_factory=list, description="Every trial, by index.")
    best: Best | None = Field(None, description="The best trial so far.")
    counts: Counts = Field(default_factory=Counts, description="Trials by state.")
    total_cost: float = Field(0.0, description="Dollars spent so far, running trials included.")
    remaining_budget: float | None = Field(
        None, description="budget.maxCost minus totalCost, when maxCost is set."
    )
    gpu_seconds: float = Field(0.0, description="Running time x GPUs requested, summed.")
    price_per_hour: float | None = Field(
        None, description="The price per trial-hour in effect (spec or operator default)."
    )
    start_time: datetime | None = Field(None, description="When the first trial was launched.")
    completion_time: datetime | None = Field(None, description="When the experiment finished.")
    observed_generation: int | None = Field(
        None, description="The spec generation last reconciled."
    )

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)
