"""How a configuration reaches a trial: ``--<name>=<value>`` arguments, never a shell."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubetune.api.spec import ExperimentSpec


def format_value(value: Any) -> str:
    """A parameter value as a command-line string: shortest round-trip for floats."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def parameter_args(spec: ExperimentSpec, config: Mapping[str, Any]) -> list[str]:
    """Arguments appended to the first container's args, in the spec's parameter order."""
    return [f"--{p.name}={format_value(config[p.name])}" for p in spec.parameters]


def trial_argv(spec: ExperimentSpec, config: Mapping[str, Any]) -> list[str]:
    """The full command line of the trial container (command + args + parameters)."""
    container = spec.trial_template.container
    return [*(container.get("command") or []), *(container.get("args") or []),
            *parameter_args(spec, config)]


def trial_env(experiment: str, namespace: str, index: int) -> dict[str, str]:
    """Variables naming the trial, set in every trial container."""
    return {
        "KUBETUNE_EXPERIMENT": experiment,
        "KUBETUNE_NAMESPACE": namespace,
        "KUBETUNE_TRIAL": str(index),
        "KUBETUNE_TRIAL_NAME": f"{experiment}-{index}",
    }
