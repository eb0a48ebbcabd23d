"""The search space: log scale, ints, categoricals, round trips, plain JSON, identity."""

from __future__ import annotations

import json
import math
import statistics
from typing import Any

import numpy as np
import pytest

from kubetune.api import Parameter
from kubetune.space import SearchSpace


def _space(*raw: dict[str, Any]) -> SearchSpace:
    return SearchSpace([Parameter.model_validate(p) for p in raw])


LR = {"name": "learning_rate", "type": "double", "min": 1e-5, "max": 1.0, "scale": "log"}
MOMENTUM = {"name": "momentum", "type": "double", "min": 0.5, "max": 1.0}
WIDTH = {"name": "width", "type": "int", "min": 3, "max": 10}
UNITS = {"name": "units", "type": "int", "min": 1, "max": 10000, "scale": "log"}
CHOICE = {"name": "choice", "type": "categorical", "values": ["adam", 1, 2.5, True, "1"]}


@pytest.fixture
def space() -> SearchSpace:
    return _space(LR, MOMENTUM, WIDTH, UNITS, CHOICE)


@pytest.fixture
def samples(space: SearchSpace) -> list[dict[str, Any]]:
    return space.sample(1000, np.random.default_rng(7))


def test_log_scale_spreads_samples_over_decades(samples: list[dict[str, Any]]) -> None:
    lrs = [s["learning_rate"] for s in samples]
    assert all(1e-5 <= v <= 1.0 for v in lrs)
    # log-uniform on [1e-5, 1]: median at 10**-2.5 ~ 3.2e-3 (uniform would give ~0.5)
    median = statistics.median(lrs)
    assert 1e-3 < median < 1e-2, median
    decades = {math.floor(math.log10(v)) for v in lrs}
    assert decades >= {-5, -4, -3, -2, -1}
    # each decade gets roughly a fifth of the samples
    for decade in (-5, -4, -3, -2, -1):
        share = sum(1 for v in lrs if math.floor(math.log10(v)) == decade) / len(lrs)
        assert 0.12 < share < 0.28, (decade, share)


def test_linear_scale_is_uniform(samples: list[dict[str, Any]]) -> None:
    momenta = [s["momentum"] for s in samples]
    assert all(0.5 <= v <= 1.0 for v in momenta)
    assert abs(statistics.median(momenta) - 0.75) < 0.05


def test_log_scale_int_parameter(samples: list[dict[str, Any]]) -> None:
    units = [s["units"] for s in samples]
    assert all(type(v) is int and 1 <= v <= 10000 for v in units)
    assert 30 < statistics.median(units) < 300  # 10**2 for log-uniform, 5000 for uniform


def test_ints_stay_python_ints_within_bounds(samples: list[dict[str, Any]]) -> None:
    widths = [s["width"] for s in samples]
    assert all(type(v) is int for v in widths)
    assert set(widths) == set(range(3, 11))  # both bounds reachable


def test_categoricals_keep_original_values_and_types(samples: list[dict[str, Any]]) -> None:
    seen = {(type(s["choice"]), s["choice"]) for s in samples}
    assert seen == {(str, "adam"), (int, 1), (float, 2.5), (bool, True), (str, "1")}


def test_outputs_are_plain_json_types(space: SearchSpace, samples: list[dict[str, Any]]) -> None:
    for config in samples:
        for value in config.values():
            assert type(value) in (float, int, str, bool), (type(value), value)
            assert not isinstance(value, np.generic)
    assert json.loads(json.dumps(samples)) == samples
    xt = space.transform(samples[:20])
    assert json.loads(json.dumps(space.inverse_transform(xt))) == space.inverse_transform(xt)


def test_to_point_from_point_round_trip(space: SearchSpace, samples: list[dict[str, Any]]) -> None:
    for config in samples:
        back = space.from_point(space.to_point(config))
        assert back == config
        assert [type(v) for v in back.values()] == [type(v) for v in config.values()]


def test_transform_round_trip_and_shape(space: SearchSpace, samples: list[dict[str, Any]]) -> None:
    xt = space.transform(samples[:50])
    # 4 numeric columns + one-hot of 5 categories, all scaled to [0, 1]
    assert xt.shape == (50, 9)
    assert xt.min() >= 0.0 and xt.max() <= 1.0
    back = space.inverse_transform(xt)
    for original, restored in zip(samples[:50], back, strict=True):
        assert restored["width"] == original["width"]
        assert restored["units"] == original["units"]
        assert restored["choice"] == original["choice"]
        assert type(restored["choice"]) is type(original["choice"])
        assert restored["learning_rate"] == pytest.approx(original["learning_rate"], rel=1e-9)
        assert restored["momentum"] == pytest.approx(original["momentum"], rel=1e-9)
    assert space.transform([]).shape == (0, 9)


def test_from_point_clamps_to_bounds() -> None:
    space = _space(MOMENTUM, WIDTH)
    assert space.from_point([1.2, 11.4]) == {"momentum": 1.0, "width": 10}
    assert space.from_point([np.float64(0.4), np.int64(2)]) == {"momentum": 0.5, "width": 3}


def test_categorical_lookup_prefers_exact_type() -> None:
    space = _space(CHOICE)
    # 1 and True are equal in Python, and "1" prints like 1: each maps to its own choice
    assert space.to_point({"choice": True}) == ["3"]
    assert space.to_point({"choice": 1}) == ["1"]
    assert space.to_point({"choice": "1"}) == ["4"]
    with pytest.raises(ValueError, match="not one of"):
        space.to_point({"choice": "sgd"})


def test_key_identifies_the_same_trial(space: SearchSpace) -> None:
    config = {"learning_rate": 0.001, "momentum": 0.9, "width": 5, "units": 64, "choice": "adam"}
    same = {"learning_rate": 0.001 * (1 + 1e-13), "momentum": 0.9, "width": 5.0,
            "units": np.int64(64), "choice": "adam"}
    assert space.key(same) == space.key(config)
    hash(space.key(config))
    # a real difference in a double, an int, or the categorical is a different trial
    assert space.key({**config, "learning_rate": 0.0011}) != space.key(config)
    assert space.key({**config, "width": 6}) != space.key(config)
    assert space.key({**config, "choice": 1}) != space.key({**config, "choice": True})
    assert space.key({**config, "choice": 1}) != space.key({**config, "choice": "1"})
    # order of the mapping does not matter
    assert space.key(dict(reversed(list(config.items())))) == space.key(config)


def test_contains(space: SearchSpace) -> None:
    config = {"learning_rate": 0.001, "momentum": 0.9, "width": 5, "units": 64, "choice": 2.5}
    assert space.contains(config)
    assert not space.contains({**config, "momentum": 1.5})
    assert not space.contains({**config, "choice": "sgd"})
    missing = dict(config)
    del missing["width"]
    assert not space.contains(missing)


def test_size() -> None:
    assert _space(WIDTH, CHOICE).size() == 8 * 5
    assert math.isinf(_space(WIDTH, MOMENTUM).size())


def test_sampling_is_seeded(space: SearchSpace) -> None:
    a = space.sample(5, np.random.default_rng(3))
    b = space.sample(5, np.random.default_rng(3))
    c = space.sample(5, np.random.default_rng(4))
    assert a == b
    assert a != c
