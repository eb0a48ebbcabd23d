"""The suggestion algorithms: no repeats, reproducible, pending-aware, plain JSON, NaN-proof."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest

from kubetune.api import Goal, Parameter, Trial, TrialState
from kubetune.api.spec import Algorithm
from kubetune.engine import observations
from kubetune.results import parse_outcome
from kubetune.space import SearchSpace
from kubetune.suggest import GPSearch, Observation, RandomSearch, Suggester, make_suggester

MIXED = [
    {"name": "x", "type": "double", "min": -2.0, "max": 2.0},
    {"name": "k", "type": "int", "min": 1, "max": 4},
    {"name": "c", "type": "categorical", "values": ["a", "b", 3]},
]
TINY = [
    {"name": "k", "type": "int", "min": 1, "max": 3},
    {"name": "c", "type": "categorical", "values": ["a", "b"]},
]


def _space(raw: list[dict[str, Any]]) -> SearchSpace:
    return SearchSpace([Parameter.model_validate(p) for p in raw])


def _gp(space: SearchSpace, seed: int = 0, initial_points: int = 4,
        goal: Goal = Goal.maximize) -> GPSearch:
    return GPSearch(space, Algorithm(name="gp", seed=seed, initial_points=initial_points), goal)


def _mixed_objective(c: Mapping[str, Any]) -> float:
    return -(c["x"] - 0.5) ** 2 - 0.1 * (c["k"] - 2) ** 2 + (0.3 if c["c"] == "b" else 0.0)


def _assert_plain(configs: list[dict[str, Any]]) -> None:
    for config in configs:
        for value in config.values():
            assert type(value) in (float, int, str, bool), (type(value), value)
    assert json.loads(json.dumps(configs)) == configs


def simulate(
    suggester: Suggester,
    space: SearchSpace,
    objective: Callable[[Mapping[str, Any]], float],
    total: int,
    parallelism: int,
    seed: int = 0,
) -> tuple[list[dict[str, Any]], list[Observation]]:
    """A whole run as a shell drives it: keep ``parallelism`` trials pending, finish them
    out of order; every 7th one fails and every 9th is killed (issued, never observed)."""
    rng = np.random.default_rng(seed)
    history: list[Observation] = []
    pending: list[dict[str, Any]] = []
    issued: list[dict[str, Any]] = []
    while len(history) < total:
        room = min(parallelism - len(pending), total - len(history) - len(pending))
        if room > 0:
            new = suggester.suggest(history, pending, room, issued=issued)
            assert len(new) <= room
            _assert_plain(new)
            pending += new
            issued += new
        if not pending:
            break
        done = pending.pop(int(rng.integers(len(pending))))
        number = len(issued)
        if number % 9 == 0:
            continue  # killed: no observation
        value = None if number % 7 == 0 else objective(done)
        history.append(Observation(done, value))
    return issued, history


@pytest.mark.parametrize("algorithm", ["gp", "random"])
def test_parallel_run_never_repeats_a_configuration(algorithm: str) -> None:
    space = _space(MIXED)
    suggester = make_suggester(space, Algorithm(name=algorithm, seed=3, initial_points=5),
                               Goal.maximize)
    issued, history = simulate(suggester, space, _mixed_objective, total=30, parallelism=3)
    keys = [space.key(c) for c in issued]
    assert len(history) == 30
    assert len(keys) == len(set(keys)), "a configuration was issued twice"
    assert all(space.contains(c) for c in issued)


@pytest.mark.parametrize("algorithm", ["gp", "random"])
def test_tiny_space_is_exhausted_without_repeats(algorithm: str) -> None:
    space = _space(TINY)
    assert space.size() == 6
    suggester = make_suggester(space, Algorithm(name=algorithm, seed=1, initial_points=2),
                               Goal.maximize)
    issued: list[dict[str, Any]] = []
    history: list[Observation] = []
    batches = []
    for _ in range(5):
        new = suggester.suggest(history, [], 4, issued=issued)
        batches.append(len(new))
        issued += new
        history += [Observation(c, float(c["k"]) + (c["c"] == "b")) for c in new]
    assert batches == [4, 2, 0, 0, 0]  # fewer once the space runs out, then nothing
    assert sorted(space.key(c) for c in issued) == sorted(
        space.key({"k": k, "c": c}) for k in (1, 2, 3) for c in ("a", "b"))


@pytest.mark.parametrize("algorithm", ["gp", "random"])
def test_pending_and_killed_configurations_are_not_reissued(algorithm: str) -> None:
    space = _space(TINY)
    suggester = make_suggester(space, Algorithm(name=algorithm, seed=1, initial_points=2),
                               Goal.maximize)
    history = [Observation({"k": 1, "c": "a"}, 1.0), Observation({"k": 2, "c": "a"}, 2.0)]
    pending = [{"k": 3, "c": "a"}]
    killed = [{"k": 1, "c": "b"}]
    new = suggester.suggest(history, pending, 3, issued=[*killed])
    assert sorted(space.key(c) for c in new) == sorted(
        [space.key({"k": 2, "c": "b"}), space.key({"k": 3, "c": "b"})])


def _history(space: SearchSpace, n: int, seed: int = 11) -> list[Observation]:
    configs = space.sample(n, np.random.default_rng(seed))
    return [Observation(c, _mixed_objective(c)) for c in configs]


@pytest.mark.parametrize("algorithm", ["gp", "random"])
def test_same_seed_and_history_give_the_same_suggestions(algorithm: str) -> None:
    space = _space(MIXED)
    history = _history(space, 8)
    pending = space.sample(2, np.random.default_rng(99))

    def make(seed: int) -> Suggester:
        return make_suggester(space, Algorithm(name=algorithm, seed=seed, initial_points=3),
                              Goal.maximize)

    first = make(5).suggest(history, pending, 3, issued=pending)
    again = make(5).suggest(list(history), list(pending), 3, issued=list(pending))
    assert first == again
    # no hidden state: the same object asked twice answers the same
    suggester = make(5)
    assert suggester.suggest(history, pending, 3, issued=pending) == first
    assert suggester.suggest(history, pending, 3, issued=pending) == first
    other = make(6).suggest(history, pending, 3, issued=pending)
    assert other != first


def test_gp_batch_differs_from_pending() -> None:
    space = _space(MIXED)
    gp = _gp(space, seed=2, initial_points=3)
    history = _history(space, 10)
    first = gp.suggest(history, [], 4)
    assert len(first) == 4
    assert len({space.key(c) for c in first}) == 4
    second = gp.suggest(history, first, 4, issued=first)
    assert len(second) == 4
    assert not {space.key(c) for c in second} & {space.key(c) for c in first}
    assert len({space.key(c) for c in second}) == 4
    _assert_plain(first + second)


@pytest.mark.parametrize("algorithm", ["gp", "random"])
def test_asking_for_more_than_the_space_holds_at_the_start(algorithm: str) -> None:
    """parallelism 3 on a two-value categorical: two suggestions, no model fitted on nothing."""
    space = _space([{"name": "c", "type": "categorical", "values": ["a", "b"]}])
    suggester = make_suggester(space, Algorithm(name=algorithm), Goal.maximize)
    new = suggester.suggest([], [], 3)
    assert sorted(c["c"] for c in new) == ["a", "b"]


def test_non_finite_metrics_make_the_trial_failed() -> None:
    for text in ('{"val_accuracy": NaN}', '{"val_accuracy": Infinity}',
                 '{"val_accuracy": -Infinity}'):
        outcome = parse_outcome("val_accuracy", 0, text)
        assert outcome.state == TrialState.failed
        assert outcome.reason == "MetricNotFinite"
        assert outcome.value is None


def test_failed_trials_reach_the_model_as_none() -> None:
    trials = [
        Trial(index=0, parameters={"x": 0.1}, state=TrialState.succeeded, value=0.8),
        Trial(index=1, parameters={"x": 0.2}, state=TrialState.failed, reason="MetricNotFinite"),
        Trial(index=2, parameters={"x": 0.3}, state=TrialState.killed),
        Trial(index=3, parameters={"x": 0.4}, state=TrialState.running),
        Trial(index=4, parameters={"x": 0.5}, state=TrialState.succeeded, value=0.7),
    ]
    record = observations(trials)
    assert [(o.config["x"], o.value) for o in record] == [(0.1, 0.8), (0.2, None), (0.5, 0.7)]


@pytest.mark.parametrize(("goal", "worst"), [(Goal.maximize, -0.5), (Goal.minimize, 0.9)])
def test_gp_never_fits_non_finite_values_and_imputes_the_worst(goal: Goal, worst: float) -> None:
    """The documented policy: failed trials are fitted at the worst successful value."""
    space = _space([{"name": "x", "type": "double", "min": 0.0, "max": 1.0}])
    gp = _gp(space, goal=goal)
    history = [
        Observation({"x": 0.1}, 0.5),
        Observation({"x": 0.2}, float("nan")),
        Observation({"x": 0.3}, 0.9),
        Observation({"x": 0.4}, float("inf")),
        Observation({"x": 0.5}, None),
        Observation({"x": 0.6}, 0.7),
        Observation({"x": 0.7}, float("-inf")),
    ]
    x, y = gp._training_data(history)
    assert len(x) == len(y) == 7
    assert np.all(np.isfinite(y))
    # internally the GP minimizes: maximize flips the sign
    sign = -1.0 if goal == Goal.maximize else 1.0
    fitted = {round(float(row[0]), 6): float(v) for row, v in zip(x, y, strict=True)}
    assert fitted[0.1] == pytest.approx(sign * 0.5)
    assert fitted[0.3] == pytest.approx(sign * 0.9)
    assert fitted[0.6] == pytest.approx(sign * 0.7)
    for failed in (0.2, 0.4, 0.5, 0.7):
        assert fitted[failed] == pytest.approx(worst)
    # and a suggestion from this record is finite, new and plain
    new = gp.suggest(history, [], 2)
    assert len(new) == 2
    assert all(math.isfinite(c["x"]) for c in new)
    assert not {space.key(c) for c in new} & {space.key(o.config) for o in history}


def test_gp_before_any_success_does_not_repeat_failures() -> None:
    space = _space(TINY)
    gp = _gp(space, initial_points=1)
    failed = [Observation({"k": k, "c": "a"}, None) for k in (1, 2, 3)]
    _, y = gp._training_data(failed)
    assert len(y) == 0  # nothing to fit yet
    new = gp.suggest(failed, [], 5)
    assert sorted(space.key(c) for c in new) == sorted(
        space.key({"k": k, "c": "b"}) for k in (1, 2, 3))


def test_random_search_is_uniform_over_the_space() -> None:
    space = _space([{"name": "lr", "type": "double", "min": 1e-5, "max": 1.0, "scale": "log"}])
    configs = RandomSearch(space, seed=0).suggest([], [], 400)
    assert len(configs) == 400
    assert 1e-3 < statistics.median(c["lr"] for c in configs) < 1e-2


def _shifted_sphere(c: Mapping[str, Any]) -> float:
    return (c["x"] - 0.7) ** 2 + (c["y"] + 1.1) ** 2


def _best_after(suggester: Suggester, space: SearchSpace, evals: int, batch: int) -> float:
    history: list[Observation] = []
    while len(history) < evals:
        new = suggester.suggest(history, [], min(batch, evals - len(history)))
        history += [Observation(c, _shifted_sphere(c)) for c in new]
    return min(o.value for o in history if o.value is not None)


def test_gp_beats_random_search_on_a_smooth_function() -> None:
    space = _space([{"name": "x", "type": "double", "min": -3.0, "max": 3.0},
                    {"name": "y", "type": "double", "min": -3.0, "max": 3.0}])
    gp_best, random_best = [], []
    for seed in (0, 1, 2):
        algorithm = Algorithm(name="gp", seed=seed, initial_points=6)
        gp_best.append(_best_after(GPSearch(space, algorithm, Goal.minimize), space, 24, 3))
        random_best.append(_best_after(RandomSearch(space, seed), space, 24, 3))
    assert statistics.median(gp_best) < statistics.median(random_best) / 3, (gp_best, random_best)
