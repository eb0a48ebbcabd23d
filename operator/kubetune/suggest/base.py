"""What every suggestion algorithm shares: inputs, outputs and the no-repeat rule."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from kubetune.space import Config, SearchSpace


@dataclass(frozen=True)
class Observation:
    """A finished trial as the model sees it.

    ``value`` is the objective as reported (not sign-flipped); ``None`` means
    the trial failed, which each algorithm handles by the documented policy
    (see :mod:`kubetune.suggest.gp`).
    """

    config: Mapping[str, Any]
    value: float | None

    @property
    def ok(self) -> bool:
        return self.value is not None and math.isfinite(self.value)


class Suggester(Protocol):
    """Proposes configurations from the record alone.

    No hidden optimizer state: everything is rebuilt from ``history`` and
    ``pending`` on each call, so an operator restart changes nothing and the
    same seed and history always give the same answer.
    """

    def suggest(
        self,
        history: Sequence[Observation],
        pending: Sequence[Mapping[str, Any]],
        n: int,
        issued: Sequence[Mapping[str, Any]] = (),
    ) -> list[Config]:
        """``n`` new configurations (fewer only when the space is exhausted).

        ``issued`` lists every configuration ever handed out (killed trials
        too); none of them, and none of ``history``/``pending``, is repeated.
        """
        ...


def seeded_rng(seed: int, *counts: int) -> np.random.Generator:
    """A generator that depends only on the seed and the size of the record."""
    return np.random.default_rng([seed, *counts])


def taken_keys(
    space: SearchSpace,
    history: Sequence[Observation],
    pending: Sequence[Mapping[str, Any]],
    issued: Sequence[Mapping[str, Any]],
) -> set[tuple[Any, ...]]:
    keys = {space.key(o.config) for o in history}
    keys.update(space.key(c) for c in pending)
    keys.update(space.key(c) for c in issued)
    return keys


def fill_random(
    space: SearchSpace,
    rng: np.random.Generator,
    n: int,
    taken: set[tuple[Any, ...]],
    attempts: int = 20,
) -> list[Config]:
    """Up to ``n`` uniform configurations not in ``taken`` (which is updated)."""
    out: list[Config] = []
    for _ in range(attempts):
        if len(out) >= n:
            break
        for config in space.sample(max(4 * (n - len(out)), 16), rng):
            key = space.key(config)
            if key not in taken:
                taken.add(key)
                out.append(config)
                if len(out) >= n:
                    break
    return out
