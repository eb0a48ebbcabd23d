"""TuningExperiment documents for tests: small specs and fake-trainer manifests."""

from __future__ import annotations

import copy
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from kubetune.api.manifest import Experiment, load_experiment
from kubetune.api.status import Trial, TrialState

REPO = Path(__file__).resolve().parents[2]
FAKE_TRAINER = Path(__file__).resolve().parent / "fake_trainer.py"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def fake_trainer_container(*args: str, gpus: int = 0) -> dict[str, Any]:
    """A trial container running tests/support/fake_trainer.py with this interpreter."""
    container: dict[str, Any] = {
        "name": "trainer", "image": "example.invalid/fake-trainer:0",
        "command": [sys.executable, str(FAKE_TRAINER)], "args": list(args),
    }
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": gpus}}
    return container


def digits_manifest(name: str, container: dict[str, Any]) -> dict[str, Any]:
    """examples/digits-quick.yaml (the seed's CNN search space) with another trial container."""
    doc = yaml.safe_load((REPO / "examples" / "digits-quick.yaml").read_text())
    doc = copy.deepcopy(doc)
    doc["metadata"]["name"] = name
    doc["spec"]["trialTemplate"]["spec"]["template"]["spec"]["containers"] = [container]
    return doc


def small_experiment(max_cost: float | None = 10.0, target: float | None = 0.99,
                     price: float = 2.6) -> Experiment:
    """team-a/exp: one parameter, 8 trials, 2 GPUs per trial, ``price`` dollars per hour."""
    doc: dict[str, Any] = {
        "apiVersion": "kubetune.io/v1alpha1", "kind": "TuningExperiment",
        "metadata": {"name": "exp", "namespace": "team-a"},
        "spec": {
            "objective": {"metric": "val_accuracy", "goal": "maximize"},
            "parameters": [{"name": "lr", "type": "double", "min": 0.001, "max": 1.0}],
            "budget": {"maxTrials": 8, "parallelism": 2},
            "cost": {"pricePerHour": price},
            "trialTemplate": {"spec": {"template": {"spec": {"containers": [
                {"name": "t", "image": "x", "command": ["true"],
                 "resources": {"limits": {"nvidia.com/gpu": 2}}}]}}}},
        },
    }
    if max_cost is not None:
        doc["spec"]["budget"]["maxCost"] = max_cost
    if target is not None:
        doc["spec"]["objective"]["target"] = target
    return load_experiment(doc)


def trial(index: int, state: TrialState, start: float | None, end: float | None,
          value: float | None = None, **extra: Any) -> Trial:
    """A trial that ran from T0+start to T0+end seconds (None: not started / not finished)."""
    return Trial(
        index=index, parameters={"lr": round(0.1 * (index + 1), 3)}, state=state, value=value,
        gpus=2, start_time=None if start is None else T0 + timedelta(seconds=start),
        finish_time=None if end is None else T0 + timedelta(seconds=end), **extra,
    )


def document(experiment: Experiment) -> dict[str, Any]:
    """The whole document, as `kubetune run` writes runs/NAME/status.yaml."""
    return {
        "apiVersion": "kubetune.io/v1alpha1", "kind": "TuningExperiment",
        "metadata": {"name": experiment.name, "namespace": experiment.namespace},
        "spec": experiment.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        "status": experiment.status.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
