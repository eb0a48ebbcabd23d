"""Seeded random search over the same space as the GP: the baseline to beat."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubetune.space import Config, SearchSpace
from kubetune.suggest.base import Observation, fill_random, seeded_rng, taken_keys


class RandomSearch:
    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        self.space = space
        self.seed = seed

    def suggest(
        self,
        history: Sequence[Observation],
        pending: Sequence[Mapping[str, Any]],
        n: int,
        issued: Sequence[Mapping[str, Any]] = (),
    ) -> list[Config]:
        taken = taken_keys(self.space, history, pending, issued)
        rng = seeded_rng(self.seed, len(taken))
        return fill_random(self.space, rng, n, taken)
