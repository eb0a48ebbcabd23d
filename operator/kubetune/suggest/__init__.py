"""Suggestion algorithms: ``gp`` (Bayesian optimization) and ``random``."""

from kubetune.api.spec import Algorithm, Goal
from kubetune.space import SearchSpace
from kubetune.suggest.base import Observation, Suggester
from kubetune.suggest.gp import GPSearch
from kubetune.suggest.random_search import RandomSearch


def make_suggester(space: SearchSpace, algorithm: Algorithm, goal: Goal) -> Suggester:
    """The suggester that ``algorithm.name`` names."""
    if algorithm.name == "random":
        return RandomSearch(space, algorithm.seed)
    return GPSearch(space, algorithm, goal)


__all__ = ["GPSearch", "Observation", "RandomSearch", "Suggester", "make_suggester"]
