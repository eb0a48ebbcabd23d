"""Regression tests for bugs found by trying the project as a new user."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import yaml

from kubetune.analysis import best_seen_trace
from kubetune.api.manifest import load_experiment
from kubetune.api.status import Trial, TrialState
from kubetune.engine import best_trial
from tests.support.experiments import REPO

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _trial(index: int, value: float, finished_after: float) -> Trial:
    return Trial(index=index, parameters={"x": index}, state=TrialState.succeeded, value=value,
                 start_time=T0, finish_time=T0 + timedelta(seconds=finished_after))


def test_equal_values_best_is_the_first_to_finish_as_in_the_trace():
    doc = yaml.safe_load((REPO / "examples" / "digits-quick.yaml").read_text())
    spec = load_experiment(doc).spec
    trials = [_trial(0, 0.5, finished_after=20), _trial(1, 0.5, finished_after=10)]
    first_best = next(p for p in best_seen_trace(spec, trials) if p.improved)
    assert best_trial(spec, trials).index == first_best.trial == 1


def test_int_bounds_are_written_back_as_ints():
    doc = yaml.safe_load((REPO / "examples" / "digits-quick.yaml").read_text())
    dumped = load_experiment(doc).spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    width = next(p for p in dumped["parameters"] if p["name"] == "conv1_width")
    assert (width["min"], width["max"]) == (3, 10)
    assert isinstance(width["min"], int)
    lr = next(p for p in dumped["parameters"] if p["name"] == "learning_rate")
    assert isinstance(lr["min"], float)
