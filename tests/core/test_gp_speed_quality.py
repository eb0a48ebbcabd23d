"""The fast GP is scikit-optimize's GP: same likelihood, same posterior, same fantasies.

No timing here (speed lives in benchmarks/suggest_latency.py): these tests pin the
numerics that make the fast path fast against scikit-learn/scikit-optimize's own
implementation, and the behaviour the operator relies on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.gaussian_process import GaussianProcessRegressor as SkGaussianProcessRegressor
from skopt.learning import GaussianProcessRegressor
from skopt.learning.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from kubetune.api.spec import Algorithm, Goal, Parameter
from kubetune.space import SearchSpace
from kubetune.suggest import GPSearch, Observation, RandomSearch
from kubetune.suggest import gp as gpmod

MIXED = [
    {"name": "lr", "type": "double", "min": 1e-5, "max": 1.0, "scale": "log"},
    {"name": "m", "type": "double", "min": 0.5, "max": 1.0},
    {"name": "w", "type": "int", "min": 3, "max": 10},
    {"name": "d", "type": "int", "min": 8, "max": 128, "scale": "log"},
    {"name": "opt", "type": "categorical", "values": ["sgd", "adam", "rmsprop"]},
    {"name": "bs", "type": "categorical", "values": [32, 64]},
]


def _space(raw: list[dict[str, Any]]) -> SearchSpace:
    return SearchSpace([Parameter.model_validate(p) for p in raw])


def _objective(c: Mapping[str, Any]) -> float:
    return ((math.log10(c["lr"]) + 3) ** 2 + (c["m"] - 0.9) ** 2 + 0.05 * (c["w"] - 5) ** 2
            + (0.5 if c["opt"] == "sgd" else 0.0) + (0.2 if c["bs"] == 64 else 0.0))


def _history(space: SearchSpace, n: int, seed: int = 0) -> list[Observation]:
    configs = space.sample(n, np.random.default_rng(seed))
    return [Observation(c, _objective(c)) for c in configs]


def _skopt_kernel(theta: np.ndarray, d: int) -> Any:
    kernel = (ConstantKernel(1.0, (0.01, 1000.0))
              * Matern(np.ones(d), [(0.01, 100.0)] * d, nu=2.5) + WhiteKernel())
    return kernel.clone_with_theta(theta)


def test_log_marginal_likelihood_and_gradient_match_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    n, d = 30, 5
    x, y = rng.random((n, d)), rng.normal(size=n)
    rows, cols = np.tril_indices(n, -1)
    for _ in range(3):
        theta = rng.uniform(-2.0, 1.0, size=d + 2)
        reference = GaussianProcessRegressor(_skopt_kernel(theta, d), optimizer=None).fit(x, y)
        lml, grad = reference.log_marginal_likelihood(theta, eval_gradient=True)
        ours, our_grad = gpmod.log_marginal_likelihood(theta, (x[rows] - x[cols]) ** 2,
                                                       rows, cols, y)
        assert ours == pytest.approx(lml, rel=1e-9)
        np.testing.assert_allclose(our_grad, grad, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("lie", ["mean", "max"])
def test_posterior_and_fantasies_match_scikit_learn_refits(lie: str) -> None:
    """Rank-one fantasies equal a GP refitted with the fantasies as data (kernel frozen)."""
    rng = np.random.default_rng(2)
    n, d = 25, 4
    x, y = rng.random((n, d)), rng.normal(size=n)
    theta = np.log([1.7, *rng.uniform(0.2, 1.5, d), 0.01])
    amplitude, length, noise = math.exp(theta[0]), np.exp(theta[1:-1]), math.exp(theta[-1])
    hp = gpmod.Hyperparameters(lambda a, b: gpmod.matern52(a, b, amplitude, length),
                               amplitude, noise)
    candidates = rng.random((50, d))
    post = gpmod.Posterior(hp, x, y)
    post.add_candidates(candidates)

    # scikit-optimize's GP with the same hyperparameters, fitted on the observations
    real = GaussianProcessRegressor(_skopt_kernel(theta, d), optimizer=None,
                                    noise="gaussian").fit(x, y)
    mean, std = real.predict(candidates, return_std=True)
    np.testing.assert_allclose(post.mean, mean, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(np.sqrt(post.var), std, rtol=1e-6, atol=1e-8)

    # two fantasies (a pending trial, then a point picked for the batch)
    lies = []
    for i in (3, 7):
        lies.append(float(post.mean[i]) if lie == "mean" else float(y.max()))
        post.add_fantasy(i, lies[-1])
    alpha = np.r_[np.full(n, noise), np.full(2, gpmod.FANTASY_NOISE * amplitude)] + 1e-10
    signal = ConstantKernel(amplitude, "fixed") * Matern(length, "fixed", nu=2.5)
    refit = SkGaussianProcessRegressor(signal, alpha=alpha, optimizer=None).fit(
        np.vstack([x, candidates[[3, 7]]]), np.r_[y, lies])
    f_mean, f_std = refit.predict(candidates, return_std=True)
    np.testing.assert_allclose(post.mean, f_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.sqrt(post.var), f_std, rtol=1e-5, atol=1e-6)
    if lie == "mean":  # Kriging believer: the mean does not move
        np.testing.assert_allclose(post.mean, mean, rtol=1e-5, atol=1e-6)


def test_log_ei_is_the_log_of_ei_and_stays_finite_far_from_the_best() -> None:
    z = np.linspace(-25.0, 6.0, 200)
    expected = np.log(norm.pdf(z) + z * norm.cdf(z))
    np.testing.assert_allclose(gpmod.log_h(z), expected, rtol=1e-8, atol=1e-10)
    far = gpmod.log_h(np.array([-40.0, -400.0, -4000.0]))
    assert np.all(np.isfinite(far)) and np.all(np.diff(far) < 0)


def test_suggestions_are_new_distinct_plain_and_reproducible() -> None:
    space = _space(MIXED)
    history = _history(space, 30)
    pending = space.sample(3, np.random.default_rng(5))
    issued = [o.config for o in history] + pending

    def ask() -> list[dict[str, Any]]:
        return GPSearch(space, Algorithm(seed=4), Goal.minimize).suggest(
            history, pending, 4, issued)

    first = ask()
    assert first == ask()
    assert json.loads(json.dumps(first)) == first
    keys = [space.key(c) for c in first]
    assert len(set(keys)) == 4
    assert not set(keys) & {space.key(c) for c in issued}
    assert all(space.contains(c) for c in first)


def test_the_initial_design_is_random_searchs() -> None:
    space = _space(MIXED)
    history = _history(space, 3)
    gp = GPSearch(space, Algorithm(seed=9, initial_points=6), Goal.minimize)
    rs = RandomSearch(space, seed=9)
    assert gp.suggest(history, [], 2) == rs.suggest(history, [], 2)
    # 3 observed + 2 pending + 4 asked, 6 initial points: 1 random, then the model's
    mixed = gp.suggest(history, rs.suggest(history, [], 2), 4)
    assert mixed[0] == rs.suggest(history, rs.suggest(history, [], 2), 4)[0]


def test_all_categorical_and_long_histories_take_their_own_paths() -> None:
    cats = _space([{"name": "a", "type": "categorical", "values": list("abcde")},
                   {"name": "b", "type": "categorical", "values": [1, 2, 3, 4]}])
    history = [Observation(c, float(ord(c["a"]) + c["b"])) for c in
               cats.sample(8, np.random.default_rng(0))]
    taken = {cats.key(o.config) for o in history}
    new = GPSearch(cats, Algorithm(seed=1, initial_points=2), Goal.minimize).suggest(
        history, [], 3)
    assert len(new) == 3 and not {cats.key(c) for c in new} & taken
    space = _space(MIXED)
    long = _history(space, gpmod.FIT_SUBSET + 40)  # hyperparameters fitted on a subset
    new = GPSearch(space, Algorithm(seed=1), Goal.minimize).suggest(long, [], 2)
    assert len(new) == 2


def test_pending_points_push_the_batch_elsewhere() -> None:
    """Told what is pending, the next batch keeps farther away from it than when the
    same configurations are only excluded (passed as issued, not as pending)."""
    space = _space([{"name": "x", "type": "double", "min": 0.0, "max": 1.0},
                    {"name": "y", "type": "double", "min": 0.0, "max": 1.0}])

    def f(c: Mapping[str, Any]) -> float:
        return math.sin(6 * c["x"]) * math.cos(5 * c["y"]) + 0.3 * c["x"]

    def gap(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> float:
        return min(math.dist((p["x"], p["y"]), (q["x"], q["y"])) for p in a for q in b)

    aware_gaps, blind_gaps = [], []
    for seed in range(6):
        history = [Observation(c, f(c)) for c in space.sample(8, np.random.default_rng(seed))]
        gp = GPSearch(space, Algorithm(seed=seed, initial_points=2), Goal.minimize)
        first = gp.suggest(history, [], 3)
        aware = gp.suggest(history, first, 3, issued=first)
        blind = gp.suggest(history, [], 3, issued=first)
        assert gap(aware, first) > 0.0
        aware_gaps.append(gap(aware, first))
        blind_gaps.append(gap(blind, first))
    assert sum(a > b for a, b in zip(aware_gaps, blind_gaps, strict=True)) >= 4, (
        aware_gaps, blind_gaps)
    assert np.median(aware_gaps) > 3 * np.median(blind_gaps), (aware_gaps, blind_gaps)


def test_gp_finds_the_valley_of_a_mixed_function() -> None:
    """A deterministic quality smoke test (seeded, no timing): 30 evaluations."""
    space = _space(MIXED)
    best = []
    for seed in (0, 1):
        history: list[Observation] = []
        gp = GPSearch(space, Algorithm(seed=seed, initial_points=8), Goal.minimize)
        while len(history) < 30:
            for c in gp.suggest(history, [], 2, [o.config for o in history]):
                history.append(Observation(c, _objective(c)))
        best.append(min(o.value for o in history if o.value is not None))
    assert max(best) < 0.6, best  # random search's median at 30 is about 1.3
