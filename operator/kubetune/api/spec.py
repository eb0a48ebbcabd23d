"""The TuningExperiment spec as pydantic models.

These models are the single source of truth: the CRD schema in ``crds/`` is
generated from them (``kubetune crd``), the local runner and the operator both
validate manifests with them, and every error names the field that is wrong.
"""

from __future__ import annotations

import math
import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

GROUP = "kubetune.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "TuningExperiment"
PLURAL = "tuningexperiments"
SINGULAR = "tuningexperiment"
SHORT_NAMES = ["tex"]

PARAMETER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class FieldError(ValueError):
    """A cross-field check that failed, pointing at the sub-field to blame.

    pydantic reports errors raised in a model validator at the model's own
    location; carrying the field name lets :func:`kubetune.api.errors.describe`
    point at ``spec.parameters[0].min`` rather than ``spec.parameters[0]``.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class Model(BaseModel):
    """Base: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
        validate_default=True,
    )


class Goal(StrEnum):
    maximize = "maximize"
    minimize = "minimize"


class Objective(Model):
    """What a trial reports and which direction is better."""

    metric: str = Field(
        min_length=1,
        description="Name of the metric to optimize, a key of the JSON object the trial writes "
        "to its termination message (for the trainer: val_accuracy, val_loss, ...).",
    )
    goal: Goal = Field(Goal.maximize, description="Whether larger (maximize) or smaller "
                       "(minimize) values of the metric are better.")
    target: float | None = Field(
        None,
        description="Stop the experiment as soon as a trial reaches this value "
        "(>= for maximize, <= for minimize).",
    )

    @field_validator("metric")
    @classmethod
    def _metric_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("target")
    @classmethod
    def _finite_target(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    def better(self, a: float, b: float) -> bool:
        """True when value ``a`` is strictly better than ``b``."""
        return a > b if self.goal == Goal.maximize else a < b

    def reached(self, value: float) -> bool:
        if self.target is None:
            return False
        return value >= self.target if self.goal == Goal.maximize else value <= self.target


class ParameterType(StrEnum):
    double = "double"
    int = "int"
    categorical = "categorical"


class Scale(StrEnum):
    linear = "linear"
    log = "log"


CategoricalValue = str | int | float | bool


class Parameter(Model):
    """One dimension of the search space."""

    name: str = Field(
        description="Parameter name; reaches the trial's first container as --<name>=<value>. "
        "Letters, digits and underscores, starting with a letter.",
    )
    type: ParameterType = Field(description="double, int or categorical.")
    min: float | None = Field(None, description="Lower bound (double and int), inclusive.")
    max: float | None = Field(None, description="Upper bound (double and int), inclusive.")
    scale: Scale = Field(
        Scale.linear,
        description="linear, or log to search the range uniformly in log space "
        "(requires min > 0).",
    )
    values: list[CategoricalValue] | None = Field(
        None, description="The choices of a categorical parameter (strings or numbers)."
    )

    @field_serializer("min", "max")
    def _bound(self, value: float | None) -> float | int | None:
        """Int parameters' bounds are written back as ints (``min: 3``, not ``3.0``)."""
        if value is not None and self.type == ParameterType.int:
            return int(value)
        return value

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not PARAMETER_NAME.match(value):
            raise ValueError(
                "must start with a letter and hold only letters, digits and underscores "
                f"(got {value!r})"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Parameter:
        if self.type == ParameterType.categorical:
            if self.min is not None or self.max is not None:
                raise FieldError("min", "not allowed for a categorical parameter; use values")
            if not self.values:
                raise FieldError("values", "a categorical parameter needs at least one value")
            seen: set[str] = set()
            for value in self.values:
                key = repr(value)
                if key in seen:
                    raise FieldError("values", f"duplicate value {value!r}")
                seen.add(key)
            if self.scale == Scale.log:
                raise FieldError("scale", "log scale does not apply to a categorical parameter")
            return self
        if self.values is not None:
            raise FieldError("values", f"only categorical parameters take values, not {self.type}")
        if self.min is None:
            raise FieldError("min", f"required for a {self.type} parameter")
        if self.max is None:
            raise FieldError("max", f"required for a {self.type} parameter")
        for field, bound in (("min", self.min), ("max", self.max)):
            if not math.isfinite(bound):
                raise FieldError(field, "must be a finite number")
            if self.type == ParameterType.int and bound != int(bound):
                raise FieldError(field, f"an int parameter needs integer bounds (got {bound:g})")
        if self.min >= self.max:
            raise FieldError(
                "min", f"must be less than max (min={self.min:g}, max={self.max:g})"
            )
        if self.scale == Scale.log and self.min <= 0:
            raise FieldError("min", f"log scale needs min > 0 (got {self.min:g})")
        return self


class Acquisition(StrEnum):
    ei = "ei"
    pi = "pi"
    lcb = "lcb"


class GPSettings(Model):
    """Settings of the Gaussian-process suggester."""

    acquisition: Acquisition = Field(
        Acquisition.ei,
        description="Acquisition function: ei (expected improvement), pi (probability of "
        "improvement) or lcb (lower confidence bound).",
    )
    xi: float = Field(0.01, ge=0, description="Exploration margin of ei and pi, in units of "
                      "the normalized objective.")
    kappa: float = Field(1.96, ge=0, description="Exploration weight of lcb.")
    candidates: int = Field(
        2000, ge=10, le=100000,
        description="Random candidates scored per suggestion (plus local candidates around "
        "the best observations).",
    )
    max_history: int = Field(
        500, ge=10,
        description="Fit the GP on at most this many observations (the best half and the most "
        "recent rest), bounding suggestion time on very long experiments.",
    )


class Algorithm(Model):
    """How the next configurations are chosen."""

    name: Literal["gp", "random"] = Field(
        "gp", description="gp (Bayesian optimization with a scikit-optimize Gaussian process) "
        "or random (seeded uniform sampling of the same space)."
    )
    seed: int = Field(0, ge=0, description="Seed: the same seed and history propose the same "
                      "configurations.")
    initial_points: int = Field(
        10, ge=1, description="Random configurations issued before the GP takes over."
    )
    gp: GPSettings = Field(default_factory=GPSettings, description="GP settings (name: gp).")


class Budget(Model):
    """When to stop and how much to run at once."""

    max_trials: int = Field(ge=1, description="Number of trials to run in total.")
    parallelism: int = Field(1, ge=1, description="Trials running at the same time.")
    max_failed_trials: int = Field(
        3, ge=0, description="Failed trials tolerated; one more fails the experiment."
    )
    max_cost: float | None = Field(
        None, ge=0,
        description="Dollars the experiment may spend; no trial is launched that the budget "
        "cannot cover (see README, cost model).",
    )
    trial_timeout: int | str | None = Field(
        None,
        description="Wall-clock limit of one trial, as seconds or a duration such as 30m or "
        "1h30m; becomes the Job's activeDeadlineSeconds.",
    )

    @field_validator("trial_timeout")
    @classmethod
    def _duration(cls, value: int | str | None) -> int | str | None:
        if value is None:
            return None
        seconds = parse_duration(value)
        if seconds <= 0:
            raise ValueError("must be positive")
        return value

    @property
    def trial_timeout_seconds(self) -> int | None:
        return None if self.trial_timeout is None else parse_duration(self.trial_timeout)


def parse_duration(value: int | str) -> int:
    """Seconds in ``value``: an int, a digit string, or a duration such as ``1h30m``."""
    if isinstance(value, bool):
        raise ValueError("must be seconds or a duration such as 30m")
    if isinstance(value, int):
        return value
    text = value.strip()
    if text.isdigit():
        return int(text)
    match = _DURATION.match(text)
    if not text or not match:
        raise ValueError(f"must be seconds or a duration such as 30m or 1h30m (got {value!r})")
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


class Cost(Model):
    """What a trial costs."""

    price_per_hour: float | None = Field(
        None, ge=0,
        description="Dollars per hour of one running trial (e.g. 2.60 for one g2.8xlarge hour). "
        "Unset: the operator's configured default price, else 0.",
    )

    @field_validator("price_per_hour")
    @classmethod
    def _finite_price(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class TrialTemplate(Model):
    """A batch/v1 Job template; each trial is one Job made from it."""

    model_config = ConfigDict(extra="forbid")

    metadata: dict[str, Any] | None = Field(
        None, description="Labels and annotations added to every trial Job."
    )
    spec: dict[str, Any] = Field(
        description="A batch/v1 JobSpec. The parameters are appended to the first container's "
        "args as --<name>=<value>; the trial's result is the JSON object in that container's "
        "termination message (or the last JSON line of its log).",
    )

    @model_validator(mode="after")
    def _has_container(self) -> TrialTemplate:
        template = self.spec.get("template")
        if not isinstance(template, dict):
            raise FieldError("spec.template", "required: the Job's pod template")
        pod_spec = template.get("spec")
        if not isinstance(pod_spec, dict):
            raise FieldError("spec.template.spec", "required: the pod spec")
        containers = pod_spec.get("containers")
        if not isinstance(containers, list) or not containers:
            raise FieldError("spec.template.spec.containers", "needs at least one container")
        for i, container in enumerate(containers):
            where = f"spec.template.spec.containers[{i}]"
            if not isinstance(container, dict):
                raise FieldError(where, "must be an object")
            if not container.get("name"):
                raise FieldError(f"{where}.name", "required")
            if not container.get("image"):
                raise FieldError(f"{where}.image", "required")
            for key in ("command", "args"):
                value = container.get(key)
                if value is not None and (
                    not isinstance(value, list) or not all(isinstance(v, str) for v in value)
                ):
                    raise FieldError(f"{where}.{key}", "must be a list of strings")
        return self

    @property
    def container(self) -> dict[str, Any]:
        """The trial container: the first one, which receives the parameters."""
        return self.spec["template"]["spec"]["containers"][0]

    def gpus(self) -> int:
        """GPUs one trial requests (``nvidia.com/gpu`` limit of its containers)."""
        total = 0
        for container in self.spec["template"]["spec"]["containers"]:
            resources = container.get("resources") or {}
            limits = resources.get("limits") or resources.get("requests") or {}
            for key, value in limits.items():
                if key.endswith("/gpu"):
                    total += int(float(value))
        return total


class ExperimentSpec(Model):
    """Desired state of a TuningExperiment."""

    objective: Objective = Field(description="The metric to optimize.")
    parameters: Annotated[list[Parameter], Field(min_length=1)] = Field(
        description="The search space: one entry per tuned hyperparameter."
    )
    algorithm: Algorithm = Field(default_factory=Algorithm, description="Suggestion algorithm.")
    budget: Budget = Field(description="Trial counts, parallelism, money and time limits.")
    cost: Cost = Field(default_factory=Cost, description="Price of running trials.")
    trial_template: TrialTemplate = Field(description="The Job each trial runs.")

    @model_validator(mode="after")
    def _unique_names(self) -> ExperimentSpec:
        seen: set[str] = set()
        for i, parameter in enumerate(self.parameters):
            if parameter.name in seen:
                raise FieldError(f"parameters[{i}].name", f"duplicate name {parameter.name!r}")
            seen.add(parameter.name)
        return self

    def parameter(self, name: str) -> Parameter:
        return next(p for p in self.parameters if p.name == name)
