"""The search space: manifest parameters <-> scikit-optimize dimensions.

Configurations leave this module as plain JSON types (float, int, str, bool),
never numpy scalars, so they can go straight into a Kubernetes status or a
command line.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from skopt.space import Categorical, Dimension, Integer, Real, Space

from kubetune.api.spec import Parameter, ParameterType, Scale

Config = dict[str, Any]


def _plain(value: Any) -> Any:
    """numpy scalar -> Python scalar."""
    return value.item() if isinstance(value, np.generic) else value


class SearchSpace:
    """An ordered set of parameters with a scikit-optimize twin.

    Categoricals are handed to scikit-optimize as their index ("0", "1", ...)
    so that mixed string/number choices survive the one-hot encoding, and are
    mapped back to the user's original values on the way out.
    """

    def __init__(self, parameters: Sequence[Parameter]) -> None:
        self.parameters = list(parameters)
        self.names = [p.name for p in self.parameters]
        self.space = Space([self._dimension(p) for p in self.parameters])

    @staticmethod
    def _dimension(p: Parameter) -> Dimension:
        prior = "log-uniform" if p.scale == Scale.log else "uniform"
        if p.type == ParameterType.double:
            return Real(p.min, p.max, prior=prior, transform="normalize", name=p.name)
        if p.type == ParameterType.int:
            return Integer(int(p.min), int(p.max), prior=prior, transform="normalize", name=p.name)
        labels = [str(i) for i in range(len(p.values or []))]
        return Categorical(labels, transform="onehot", name=p.name)

    # -- conversions -----------------------------------------------------------------
    def to_point(self, config: Mapping[str, Any]) -> list[Any]:
        """A configuration as a scikit-optimize point (list in parameter order)."""
        point: list[Any] = []
        for p in self.parameters:
            value = config[p.name]
            if p.type == ParameterType.categorical:
                point.append(str(self._category_index(p, value)))
            elif p.type == ParameterType.int:
                point.append(round(float(value)))
            else:
                point.append(float(value))
        return point

    def from_point(self, point: Sequence[Any]) -> Config:
        """A scikit-optimize point as a configuration of plain JSON values."""
        config: Config = {}
        for p, raw in zip(self.parameters, point, strict=True):
            value = _plain(raw)
            if p.type == ParameterType.categorical:
                config[p.name] = (p.values or [])[int(value)]
            elif p.type == ParameterType.int:
                config[p.name] = int(min(max(round(float(value)), p.min), p.max))
            else:
                config[p.name] = float(min(max(float(value), p.min), p.max))
        return config

    def transform(self, configs: Iterable[Mapping[str, Any]]) -> np.ndarray:
        """Configurations -> the GP's [0, 1]-scaled, one-hot input matrix."""
        points = [self.to_point(c) for c in configs]
        if not points:
            return np.empty((0, self.space.transformed_n_dims))
        return np.asarray(self.space.transform(points), dtype=float)

    def inverse_transform(self, xt: np.ndarray) -> list[Config]:
        return [self.from_point(p) for p in self.space.inverse_transform(np.atleast_2d(xt))]

    def sample(self, n: int, rng: np.random.Generator) -> list[Config]:
        """n uniform (log-uniform where asked) configurations."""
        seed = int(rng.integers(0, 2**31 - 1))
        return [self.from_point(p) for p in self.space.rvs(n_samples=n, random_state=seed)]

    def contains(self, config: Mapping[str, Any]) -> bool:
        try:
            for p in self.parameters:
                value = config[p.name]
                if p.type == ParameterType.categorical:
                    self._category_index(p, value)
                elif not p.min <= float(value) <= p.max:
                    return False
        except (KeyError, ValueError, TypeError):
            return False
        return True

    @staticmethod
    def _category_index(p: Parameter, value: Any) -> int:
        values = p.values or []
        for i, choice in enumerate(values):
            if choice == value and type(choice) is type(value):
                return i
        for i, choice in enumerate(values):
            if str(choice) == str(value):
                return i
        raise ValueError(f"{value!r} is not one of {values!r}")

    # -- identity ----------------------------------------------------------------------
    def key(self, config: Mapping[str, Any]) -> tuple[Any, ...]:
        """A hashable identity: two configurations with the same key are the same trial.

        Doubles are compared to 10 significant digits, the precision at which two
        learning rates are indistinguishable to any trainer.
        """
        out: list[Any] = []
        for p in self.parameters:
            value = config.get(p.name)
            if p.type == ParameterType.double and value is not None:
                value = float(f"{float(value):.10g}") if math.isfinite(float(value)) else value
            elif p.type == ParameterType.int and value is not None:
                value = round(float(value))
            elif p.type == ParameterType.categorical:
                value = repr(value)
            out.append(value)
        return tuple(out)

    def size(self) -> float:
        """Number of distinct configurations (inf when any parameter is a double)."""
        total = 1.0
        for p in self.parameters:
            if p.type == ParameterType.double:
                return math.inf
            total *= len(p.values or []) if p.type == ParameterType.categorical else (
                int(p.max) - int(p.min) + 1
            )
        return total
