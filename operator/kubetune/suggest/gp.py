"""Bayesian optimization with scikit-optimize's Gaussian process, fast in batches.

Why not ``skopt.Optimizer.ask(n_points)``: its constant-liar batches refit the
GP and its kernel hyperparameters once per point and search the acquisition
with L-BFGS from many starts, which takes about a minute for 4 points at 300
observations on 2 cores. Here, per call:

1. the GP (scikit-optimize's own kernel: constant x Matern-5/2 with one length
   scale per dimension, plus a learned white-noise term) is fitted ONCE,
   hyperparameters included;
2. pending trials and each point already chosen in this batch are added as
   Kriging-believer fantasies (observed at the GP mean) with the kernel frozen:
   one Cholesky factorization of the data, no hyperparameter search;
3. the acquisition (EI by default) is maximized over a bounded candidate set:
   uniform samples plus local perturbations of the best observations.

Failed-trial policy: a failed trial (an error, a timeout, a NaN or infinite
metric) is given to the GP at the WORST objective value observed among
successful trials, so the model learns to stay away from regions that crash;
its own (absent or non-finite) value is never fitted. Before any trial
succeeded, failed configurations are simply not repeated.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import norm
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process.kernels import WhiteKernel
from skopt.learning import GaussianProcessRegressor
from skopt.learning.gaussian_process.gpr import _param_for_white_kernel_in_Sum
from skopt.utils import cook_estimator

from kubetune.api.spec import Acquisition, Algorithm, Goal
from kubetune.space import Config, SearchSpace
from kubetune.suggest.base import Observation, fill_random, seeded_rng, taken_keys

LOCAL_CENTERS = 5
LOCAL_PER_CENTER = 100
LOCAL_SCALE = 0.05
RESTARTS = 2


class GPSearch:
    def __init__(self, space: SearchSpace, algorithm: Algorithm, goal: Goal) -> None:
        self.space = space
        self.algorithm = algorithm
        self.settings = algorithm.gp
        self.sign = -1.0 if goal == Goal.maximize else 1.0  # internally: minimize

    # ------------------------------------------------------------------ public
    def suggest(
        self,
        history: Sequence[Observation],
        pending: Sequence[Mapping[str, Any]],
        n: int,
        issued: Sequence[Mapping[str, Any]] = (),
    ) -> list[Config]:
        taken = taken_keys(self.space, history, pending, issued)
        rng = seeded_rng(self.algorithm.seed, len(history), len(pending), len(taken))
        out: list[Config] = []
        n_random = max(0, min(n, self.algorithm.initial_points - len(taken)))
        x_obs, y_obs = self._training_data(history)
        if len(y_obs) < 2:
            n_random = n
        if n_random:
            out += fill_random(self.space, rng, n_random, taken)
        if len(out) < n and len(y_obs) >= 2:  # a GP needs data: else random fills the rest
            out += self._bayesian(x_obs, y_obs, [*pending, *out], n - len(out), taken, rng)
        if len(out) < n:  # acquisition found no unseen candidate: fall back to random
            out += fill_random(self.space, rng, n - len(out), taken)
        return out

    # ---------------------------------------------------------------- internals
    def _training_data(self, history: Sequence[Observation]) -> tuple[np.ndarray, np.ndarray]:
        ok = [o for o in history if o.ok]
        if not ok:
            return self.space.transform([]), np.empty(0)
        y_ok = np.array([self.sign * float(o.value) for o in ok])  # type: ignore[arg-type]
        worst = float(y_ok.max())
        failed = [o for o in history if not o.ok]
        configs = [o.config for o in ok] + [o.config for o in failed]
        y = np.concatenate([y_ok, np.full(len(failed), worst)])
        configs, y = self._bounded(configs, y)
        return self.space.transform(configs), y

    def _bounded(
        self, configs: list[Mapping[str, Any]], y: np.ndarray
    ) -> tuple[list[Mapping[str, Any]], np.ndarray]:
        """Keep the best half and the most recent rest when the history is too long."""
        limit = self.settings.max_history
        if len(y) <= limit:
            return configs, y
        best = set(np.argsort(y, kind="stable")[: limit // 2].tolist())
        recent = [i for i in range(len(y) - 1, -1, -1) if i not in best][: limit - len(best)]
        keep = sorted(best | set(recent))
        return [configs[i] for i in keep], y[keep]

    def _fit(self, x: np.ndarray, y: np.ndarray, seed: int) -> GaussianProcessRegressor:
        gp = cook_estimator(
            "GP",
            space=self.space.space,
            random_state=seed,
            noise="gaussian",
            normalize_y=True,
            n_restarts_optimizer=RESTARTS,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            gp.fit(x, y)
        return gp

    @staticmethod
    def _frozen(gp: GaussianProcessRegressor) -> GaussianProcessRegressor:
        """A GP with ``gp``'s fitted hyperparameters, refit by one Cholesky only."""
        kernel = clone(gp.kernel_)
        present, param = _param_for_white_kernel_in_Sum(kernel)
        if present:
            kernel.set_params(**{param: WhiteKernel(noise_level=max(gp.noise_ or 0.0, 1e-10))})
        return GaussianProcessRegressor(
            kernel=kernel, optimizer=None, normalize_y=True, noise="gaussian"
        )

    def _candidates(self, x_obs: np.ndarray, y_obs: np.ndarray, rng: np.random.Generator) -> (
        tuple[list[Config], np.ndarray]
    ):
        configs = self.space.sample(self.settings.candidates, rng)
        if len(y_obs):
            centers = x_obs[np.argsort(y_obs, kind="stable")[:LOCAL_CENTERS]]
            noise = rng.normal(0.0, LOCAL_SCALE, size=(len(centers), LOCAL_PER_CENTER, x_obs.shape[1]))
            local = np.clip(centers[:, None, :] + noise, 0.0, 1.0).reshape(-1, x_obs.shape[1])
            configs += self.space.inverse_transform(local)
        return configs, self.space.transform(configs)

    def _acquisition(
        self, gp: GaussianProcessRegressor, xt: np.ndarray, y_best: float, y_scale: float
    ) -> tuple[np.ndarray, np.ndarray]:
        mu, sigma = gp.predict(xt, return_std=True)
        mu = mu / y_scale
        sigma = np.maximum(sigma / y_scale, 1e-12)
        best = y_best / y_scale
        kind = self.settings.acquisition
        if kind == Acquisition.lcb:
            score = -(mu - self.settings.kappa * sigma)
        else:
            improvement = best - mu - self.settings.xi
            z = improvement / sigma
            score = norm.cdf(z) if kind == Acquisition.pi else (
                improvement * norm.cdf(z) + sigma * norm.pdf(z)
            )
        return score, mu * y_scale

    def _bayesian(
        self,
        x_obs: np.ndarray,
        y_obs: np.ndarray,
        pending: Sequence[Mapping[str, Any]],
        n: int,
        taken: set[tuple[Any, ...]],
        rng: np.random.Generator,
    ) -> list[Config]:
        gp = self._fit(x_obs, y_obs, int(rng.integers(0, 2**31 - 1)))
        y_scale = float(np.std(y_obs)) or 1.0
        y_best = float(y_obs.min())
        x_train, y_train = x_obs, y_obs
        if pending:  # Kriging believer: pending trials "observed" at the GP mean
            x_pend = self.space.transform(pending)
            x_train = np.vstack([x_train, x_pend])
            y_train = np.concatenate([y_train, gp.predict(x_pend)])
            gp = self._refit(gp, x_train, y_train)
        configs, xt = self._candidates(x_obs, y_obs, rng)
        keys = [self.space.key(c) for c in configs]
        out: list[Config] = []
        for _ in range(n):
            score, mean = self._acquisition(gp, xt, y_best, y_scale)
            chosen = None
            for i in np.argsort(-score, kind="stable"):
                if keys[i] not in taken:
                    chosen = int(i)
                    break
            if chosen is None:
                break
            taken.add(keys[chosen])
            out.append(configs[chosen])
            x_train = np.vstack([x_train, xt[chosen : chosen + 1]])
            y_train = np.append(y_train, mean[chosen])
            if len(out) < n:
                gp = self._refit(gp, x_train, y_train)
        return out

    def _refit(
        self, gp: GaussianProcessRegressor, x: np.ndarray, y: np.ndarray
    ) -> GaussianProcessRegressor:
        frozen = self._frozen(gp)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            frozen.fit(x, y)
        return frozen
