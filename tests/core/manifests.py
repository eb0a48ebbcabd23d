"""Small, valid TuningExperiment documents for the tests to modify."""

from __future__ import annotations

import copy
from typing import Any

from kubetune.api import ExperimentSpec, load_experiment

BASE: dict[str, Any] = {
    "apiVersion": "kubetune.io/v1alpha1",
    "kind": "TuningExperiment",
    "metadata": {"name": "test-experiment"},
    "spec": {
        "objective": {"metric": "val_accuracy", "goal": "maximize"},
        "algorithm": {"name": "random", "seed": 1},
        "budget": {"maxTrials": 10, "parallelism": 2},
        "cost": {"pricePerHour": 2.60},
        "parameters": [
            {"name": "learning_rate", "type": "double", "min": 1.0e-5, "max": 1.0, "scale": "log"},
            {"name": "momentum", "type": "double", "min": 0.5, "max": 1.0},
            {"name": "conv1_width", "type": "int", "min": 3, "max": 10},
            {"name": "optimizer", "type": "categorical", "values": ["rmsprop", "adam", 3]},
        ],
        "trialTemplate": {
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{
                            "name": "trainer",
                            "image": "ghcr.io/kubetune/trainer:0.1.0",
                            "command": ["kubetune-trainer"],
                            "args": ["--dataset=digits"],
                            "resources": {"limits": {"nvidia.com/gpu": 2}},
                        }],
                    },
                },
            },
        },
    },
}


def document(**spec_updates: Any) -> dict[str, Any]:
    """A deep copy of :data:`BASE` with top-level spec keys replaced."""
    doc = copy.deepcopy(BASE)
    doc["spec"].update(copy.deepcopy(spec_updates))
    return doc


def make_spec(**spec_updates: Any) -> ExperimentSpec:
    return load_experiment(document(**spec_updates)).spec
