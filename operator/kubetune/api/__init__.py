"""The TuningExperiment API (group kubetune.io, version v1alpha1)."""

from kubetune.api.errors import InvalidSpec, Problem
from kubetune.api.manifest import Experiment, load_experiment, parse_spec, parse_status
from kubetune.api.spec import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    ExperimentSpec,
    Goal,
    Parameter,
    ParameterType,
    Scale,
)
from kubetune.api.status import (
    Best,
    Condition,
    ConditionStatus,
    Counts,
    ExperimentStatus,
    Trial,
    TrialState,
)

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "Best",
    "Condition",
    "ConditionStatus",
    "Counts",
    "Experiment",
    "ExperimentSpec",
    "ExperimentStatus",
    "Goal",
    "InvalidSpec",
    "Parameter",
    "ParameterType",
    "Problem",
    "Scale",
    "Trial",
    "TrialState",
    "load_experiment",
    "parse_spec",
    "parse_status",
]
