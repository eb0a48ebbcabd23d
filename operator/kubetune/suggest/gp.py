"""Bayesian optimization with scikit-optimize's Gaussian process, fast in batches.

The model is the one ``skopt`` builds for ``gp_minimize`` (``cook_estimator("GP")``):
constant x Matern-5/2 with one length scale per input dimension plus a learned
white-noise term, the same bounds, fitted by maximizing the log marginal likelihood
with L-BFGS-B. ``skopt.Optimizer`` takes one to two minutes for ``tell`` +
``ask(n_points=4)`` at 300 observations on 2 cores (benchmarks/RESULTS.md): it refits
that GP, hyperparameters included, once per point of the batch and maximizes
gp_hedge's acquisitions with L-BFGS from many starts. Per call, this module instead
(each step measured in benchmarks/suggest_latency.py and benchmarks/optimizers.py):

1. fits the kernel hyperparameters ONCE, with a numpy implementation of the same
   likelihood and its analytic gradient (scikit-learn's generic kernel code builds
   an n x n x d gradient tensor per evaluation), from scikit-learn's default start
   plus ``RESTARTS`` seeded random start; past ``FIT_SUBSET`` observations the
   hyperparameters are fitted on a subset (the best quarter and a seeded sample of
   the rest) while the posterior uses every observation (0.35 s instead of 0.94 s
   at 300 observations);
2. conditions on pending trials and on each point already picked for this batch as
   Kriging-believer fantasies (observed at the posterior mean) with the kernel
   frozen: one Cholesky row per point, no refit. A fantasy below the incumbent
   becomes the incumbent, and fantasies are believed almost noise-free, so the rest
   of the batch goes elsewhere (with the fitted noise, batches stacked near-copies
   of one point; a constant liar at the worst value measured worse);
3. maximizes the acquisition over ``GPSettings.candidates`` uniform samples plus
   perturbations of the best observations, snapped onto the grid (ints, one-hot);
   ranking 2,500 candidates by posterior mean and variance costs a few ms.

The objective is warped (``Y_WARP``: standardized, then Yeo-Johnson, then
standardized, as HEBO does) before the GP sees it: diverged trials and failures
make the objective heavy-tailed, and a stationary GP fitted to raw values spends its
flexibility on the cliff. Measured on the 8-D mixed benchmark, batch 4, at 80
evaluations: better on 10 of 10 seeds. Vizier's half-rank warp (``half_rank``) can
go before it; it was measured and not kept: neutral on the synthetic functions, and
in the real seed run it let gp train three times as many diverged networks late in
the search (benchmarks/RESULTS.md).

``ei`` ranks candidates by log-EI (the same order as EI wherever EI does not
underflow to 0, and still informative where it does); ``pi`` by log-PI.

BLAS runs single-threaded here: the matrices are small (at most ``max_history``
rows), and OpenBLAS threads made a 150-observation call 7x slower even on an idle
2-core machine (much worse on a busy one).

Initial design: the first ``initial_points`` configurations are exactly those that
``random`` search with the same seed would propose (common random numbers), so a
gp-versus-random comparison differs only where the model starts to choose.

Failed-trial policy: a failed trial (an error, a timeout, a NaN or infinite
metric) is given to the GP at the WORST objective value observed among
successful trials, so the model learns to stay away from regions that crash;
its own (absent or non-finite) value is never fitted. Before any trial
succeeded, failed configurations are simply not repeated.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.linalg import LinAlgError, cho_solve, cholesky, lapack, solve_triangular
from scipy.optimize import minimize
from scipy.spatial.distance import cdist
from scipy.special import erfcx, log_ndtr, ndtri
from scipy.stats import rankdata
from sklearn.exceptions import ConvergenceWarning
from skopt.learning.gaussian_process.gpr import _param_for_white_kernel_in_Sum
from skopt.space import Categorical
from skopt.utils import cook_estimator
from threadpoolctl import threadpool_limits

from kubetune.api.spec import Acquisition, Algorithm, Goal
from kubetune.space import Config, SearchSpace
from kubetune.suggest.base import Observation, fill_random, seeded_rng, taken_keys
from kubetune.suggest.random_search import RandomSearch

# Candidate search.
LOCAL_CENTERS = 5  # best observations perturbed for the initial pool
LOCAL_PER_CENTER = 100
LOCAL_SCALE = 0.05  # std of the perturbations, in the [0, 1]-scaled input space
# Hyperparameter fit.
RESTARTS = 1  # random L-BFGS-B starts besides scikit-learn's default start
MAX_ITER = 200
FIT_SUBSET = 200  # fit the hyperparameters on at most this many observations
Y_WARP = "yeo-johnson"  # none|yeo-johnson|copula|log, half-rank[+one] (see warp())
# scikit-optimize's GP bounds (cook_estimator) and scikit-learn's WhiteKernel bounds.
AMPLITUDE_BOUNDS = (0.01, 1000.0)
LENGTH_SCALE_BOUNDS = (0.01, 100.0)
NOISE_BOUNDS = (1e-5, 1e5)
JITTER = 1e-10  # GaussianProcessRegressor(alpha=1e-10)
FANTASY_NOISE = 1e-4  # noise of a fantasy observation, relative to the prior variance
LIE = "mean"  # value of a fantasy: mean (Kriging believer) | max | min (constant liar)
SQRT5 = math.sqrt(5.0)

Kernel = Callable[[np.ndarray, np.ndarray], np.ndarray]


# ----------------------------------------------------------------------------- model
def matern52(x1: np.ndarray, x2: np.ndarray, amplitude: float, length: np.ndarray) -> np.ndarray:
    """amplitude * Matern-5/2(|x1 - x2| / length), as scikit-learn's Matern(nu=2.5)."""
    r = cdist(x1 / length, x2 / length) * SQRT5
    return amplitude * (1.0 + r + r * r / 3.0) * np.exp(-r)


def log_marginal_likelihood(
    theta: np.ndarray, sq_diff: np.ndarray, rows: np.ndarray, cols: np.ndarray, y: np.ndarray
) -> tuple[float, np.ndarray]:
    """LML of constant x Matern-5/2 (ARD) + white noise, and its gradient in log-space.

    ``theta`` is scikit-learn's ``kernel.theta`` ([log amplitude, log length scales...,
    log noise]); ``sq_diff`` holds the per-dimension squared differences of the pairs
    (``rows[k]`` > ``cols[k]``) of training inputs, computed once per fit.
    """
    n = len(y)
    amplitude, noise = math.exp(theta[0]), math.exp(theta[-1])
    inv_l2 = np.exp(-2.0 * theta[1:-1])
    r = np.sqrt(5.0 * (sq_diff @ inv_l2))
    e = np.exp(-r)
    k_pairs = amplitude * (1.0 + r + r * r / 3.0) * e
    k = np.empty((n, n))
    k[rows, cols] = k_pairs
    k[cols, rows] = k_pairs
    np.fill_diagonal(k, amplitude + noise + JITTER)
    try:
        chol = cholesky(k, lower=True, check_finite=False)
    except LinAlgError:
        return -1e25, np.zeros_like(theta)
    alpha = cho_solve((chol, True), y, check_finite=False)
    lml = -0.5 * float(y @ alpha) - float(np.log(np.diag(chol)).sum()) - 0.5 * n * math.log(2 * math.pi)
    k_inv, info = lapack.dpotri(chol, lower=1)
    if info:
        return lml, np.zeros_like(theta)
    # W = alpha alpha^T - K^-1; only its lower triangle and diagonal are needed.
    w_pairs = alpha[rows] * alpha[cols] - k_inv[rows, cols]
    w_diag = alpha * alpha - np.diag(k_inv)
    grad = np.empty_like(theta)
    grad[0] = float(w_pairs @ k_pairs) + 0.5 * amplitude * float(w_diag.sum())
    grad[1:-1] = (amplitude * 5.0 / 3.0) * ((w_pairs * (1.0 + r) * e) @ sq_diff) * inv_l2
    grad[-1] = 0.5 * noise * float(w_diag.sum())
    return lml, grad


@dataclass
class Hyperparameters:
    """A fitted signal kernel and its white-noise variance (normalized-y units)."""

    kernel: Kernel
    prior_variance: float  # k(x, x) of the signal kernel
    noise: float


def fit_matern(
    x: np.ndarray, y: np.ndarray, rng: np.random.Generator, restarts: int | None = None
) -> tuple[np.ndarray, float]:
    """Maximize the LML over (amplitude, length scales, noise) from several starts.

    ``y`` is already normalized. Returns the best ``theta`` and its LML.
    """
    d = x.shape[1]
    rows, cols = np.tril_indices(len(y), -1)
    sq_diff = (x[rows] - x[cols]) ** 2
    bounds = np.log(np.array([AMPLITUDE_BOUNDS, *[LENGTH_SCALE_BOUNDS] * d, NOISE_BOUNDS]))
    starts = [np.zeros(d + 2)]  # scikit-learn's start: amplitude 1, length scales 1, noise 1
    n_random = RESTARTS if restarts is None else restarts
    starts += [rng.uniform(bounds[:, 0], bounds[:, 1]) for _ in range(n_random)]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        lml, grad = log_marginal_likelihood(theta, sq_diff, rows, cols, y)
        return -lml, -grad

    best_theta, best_lml = starts[0], -math.inf
    for start in starts:
        result = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds,
                          options={"maxiter": MAX_ITER})
        if -result.fun > best_lml and np.all(np.isfinite(result.x)):
            best_theta, best_lml = result.x, -float(result.fun)
    return best_theta, best_lml


class Posterior:
    """The GP posterior over a growing pool of candidates, conditioned on fantasies.

    One lower Cholesky factor ``chol`` of K(A, A) + noise over the observations, then
    one row more per fantasy (a pending trial, or a point already picked for this
    batch, "observed" at a lie): conditioning costs O(n m) for m candidates, no refit
    and no new factorization. ``v`` holds chol^-1 K(A, candidates): a candidate's
    variance is k(x, x) - |v[:, i]|^2 and its mean the observations' GP mean plus
    ``v[fantasy rows, i] @ delta``.

    Fantasies are believed almost exactly (noise ``FANTASY_NOISE`` x the prior
    variance, not the fitted noise): with the fitted noise a fantasy barely lowers
    the variance where the model thinks the data noisy, and measured batches then
    stacked near-copies of one point.
    """

    def __init__(self, hp: Hyperparameters, x_obs: np.ndarray, y_norm: np.ndarray) -> None:
        self.hp = hp
        self.points = np.array(x_obs, dtype=float)
        self.n_obs = len(x_obs)
        self.fantasy_noise = FANTASY_NOISE * hp.prior_variance
        k = hp.kernel(self.points, self.points)
        k[np.diag_indices_from(k)] += hp.noise + JITTER
        self.chol = cholesky(k, lower=True, check_finite=False)
        self.alpha = cho_solve((self.chol, True), y_norm, check_finite=False)
        self.delta = np.empty(0)  # per fantasy row: (lie - mean) / its Cholesky diagonal
        self.xt = np.empty((0, x_obs.shape[1]))
        self.v = np.empty((len(self.points), 0))
        self.mean = np.empty(0)
        self.var = np.empty(0)

    def _posterior(self, xt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cross = self.hp.kernel(self.points, xt)
        v = solve_triangular(self.chol, cross, lower=True, check_finite=False)
        mean = cross[: self.n_obs].T @ self.alpha + v[self.n_obs :].T @ self.delta
        return v, mean, self.hp.prior_variance - (v * v).sum(axis=0)

    def add_candidates(self, xt: np.ndarray) -> None:
        v, mean, var = self._posterior(xt)
        self.xt = np.vstack([self.xt, xt])
        self.v = np.hstack([self.v, v])
        self.mean = np.concatenate([self.mean, mean])
        self.var = np.concatenate([self.var, np.maximum(var, 0.0)])

    def add_fantasy(self, i: int, value: float) -> None:
        """Condition on candidate ``i`` as if it had been observed at ``value``."""
        x = self.xt[i : i + 1]
        col = self.v[:, i]
        diag = math.sqrt(max(self.hp.prior_variance + self.fantasy_noise + JITTER
                             - float(col @ col), 1e-12))
        row = (self.hp.kernel(x, self.xt)[0] - col @ self.v) / diag
        step = (value - float(self.mean[i])) / diag
        n = len(self.points)
        chol = np.zeros((n + 1, n + 1))
        chol[:n, :n] = self.chol
        chol[n, :n] = col
        chol[n, n] = diag
        self.chol = chol
        self.points = np.vstack([self.points, x])
        self.v = np.vstack([self.v, row])
        self.delta = np.append(self.delta, step)
        self.mean = self.mean + row * step
        self.var = np.maximum(self.var - row * row, 0.0)


# ------------------------------------------------------------------------ suggester
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
        if n_random:  # exactly what random search would propose here: see the docstring
            out += RandomSearch(self.space, self.algorithm.seed).suggest(
                history, pending, n, issued)[:n_random]
            taken.update(self.space.key(c) for c in out)
        if len(out) < n and len(y_obs) >= 2:  # a GP needs data: else random fills the rest
            with threadpool_limits(limits=1, user_api="blas"):
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

    def _hyperparameters(self, x: np.ndarray, y_norm: np.ndarray,
                         rng: np.random.Generator) -> Hyperparameters:
        """Fit the kernel once; all-categorical spaces keep skopt's Hamming-kernel GP."""
        if self.space.space.is_categorical:
            return self._skopt_hyperparameters(x, y_norm, int(rng.integers(0, 2**31 - 1)))
        fit_x, fit_y = x, y_norm
        if len(y_norm) > FIT_SUBSET:
            order = np.argsort(y_norm, kind="stable")
            best = order[: FIT_SUBSET // 4]
            rest = rng.choice(order[FIT_SUBSET // 4 :], FIT_SUBSET - len(best), replace=False)
            keep = np.sort(np.concatenate([best, rest]))
            fit_x, fit_y = x[keep], y_norm[keep]
            fit_y = (fit_y - fit_y.mean()) / (fit_y.std() or 1.0)  # as normalize_y would
            scale = float(y_norm[keep].std() or 1.0)
        else:
            scale = 1.0
        theta, _ = fit_matern(fit_x, fit_y, rng)
        # Amplitude and noise were fitted in the subset's y units: back to the full set's.
        amplitude = math.exp(theta[0]) * scale**2
        length = np.exp(theta[1:-1])
        noise = math.exp(theta[-1]) * scale**2
        return Hyperparameters(
            kernel=lambda a, b: matern52(a, b, amplitude, length),
            prior_variance=amplitude,
            noise=noise,
        )

    def _skopt_hyperparameters(self, x: np.ndarray, y_norm: np.ndarray,
                               seed: int) -> Hyperparameters:
        gp = cook_estimator("GP", space=self.space.space, random_state=seed, noise="gaussian",
                            normalize_y=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            gp.fit(x, y_norm)
        kernel = gp.kernel_  # fit() already set its white-noise term to 0
        present, _ = _param_for_white_kernel_in_Sum(kernel)
        noise = float(gp.noise_ or 0.0) if present else 0.0
        return Hyperparameters(
            kernel=lambda a, b: kernel(a, b),
            prior_variance=float(kernel.diag(x[:1])[0]),
            noise=max(noise, NOISE_BOUNDS[0]),
        )

    def _snap(self, raw: np.ndarray) -> np.ndarray:
        """Rows of the scaled space moved onto the grid: rounded ints, valid one-hot blocks.

        Done per column with numpy: scikit-optimize's row-wise round trip through
        categorical labels costs milliseconds per call in input validation.
        """
        raw = np.clip(raw, 0.0, 1.0)
        out = np.empty_like(raw)
        col = 0
        for dim in self.space.space.dimensions:
            width = dim.transformed_size
            block = raw[:, col : col + width]
            if isinstance(dim, Categorical):
                if width == 1:
                    out[:, col] = np.round(block[:, 0]) if len(dim.categories) > 1 else 0.0
                else:
                    out[:, col : col + width] = np.eye(width)[np.argmax(block, axis=1)]
            else:
                out[:, col] = np.asarray(dim.transform(dim.inverse_transform(block[:, 0])),
                                         dtype=float).reshape(-1)
            col += width
        return out

    def _perturb(self, centers: np.ndarray, per: int, scale: float,
                 rng: np.random.Generator) -> np.ndarray:
        """Gaussian perturbations of ``centers`` in the scaled space, snapped."""
        noise = rng.normal(0.0, scale, size=(len(centers), per, centers.shape[1]))
        return self._snap((centers[:, None, :] + noise).reshape(-1, centers.shape[1]))

    def _candidates(self, x_obs: np.ndarray, y_obs: np.ndarray,
                    rng: np.random.Generator) -> np.ndarray:
        """Uniform (log-uniform where asked) samples and perturbations of the best points."""
        seed = int(rng.integers(0, 2**31 - 1))
        points = self.space.space.rvs(n_samples=self.settings.candidates, random_state=seed)
        xt = np.asarray(self.space.space.transform(points), dtype=float)
        if len(y_obs):
            centers = x_obs[np.argsort(y_obs, kind="stable")[:LOCAL_CENTERS]]
            xt = np.vstack([xt, self._perturb(centers, LOCAL_PER_CENTER, LOCAL_SCALE, rng)])
        return xt

    def _score(self, mean: np.ndarray, var: np.ndarray, best: float) -> np.ndarray:
        """Acquisition (larger is better) in normalized-y units; ei/pi as logarithms."""
        sigma = np.sqrt(np.maximum(var, 1e-18))
        kind = self.settings.acquisition
        if kind == Acquisition.lcb:
            return -(mean - self.settings.kappa * sigma)
        z = (best - mean - self.settings.xi) / sigma
        if kind == Acquisition.pi:
            return log_ndtr(z)
        return np.log(sigma) + log_h(z)

    def _bayesian(
        self,
        x_obs: np.ndarray,
        y_obs: np.ndarray,
        pending: Sequence[Mapping[str, Any]],
        n: int,
        taken: set[tuple[Any, ...]],
        rng: np.random.Generator,
    ) -> list[Config]:
        y_norm = warp(y_obs, Y_WARP)
        hp = self._hyperparameters(x_obs, y_norm, rng)
        post = Posterior(hp, x_obs, y_norm)
        pool = _Pool(self.space, taken)
        best = float(y_norm.min())
        lie = {"max": float(y_norm.max()), "min": best}.get(LIE)
        if pending:  # in the pool only to be conditioned on: taken, so never offered
            x_pending = self.space.transform(pending)
            post.add_candidates(x_pending)
            pool.add(x_pending)
            for i in range(len(pending)):
                value = float(post.mean[i]) if lie is None else lie
                post.add_fantasy(i, value)
                best = min(best, value)
        candidates = self._candidates(x_obs, y_norm, rng)
        post.add_candidates(candidates)
        pool.add(candidates)
        out: list[Config] = []
        for _ in range(n):
            pool.score = self._score(post.mean, post.var, best)
            top = pool.top(1)
            if not top:
                break
            out.append(pool.take(top[0]))
            if len(out) < n:
                value = float(post.mean[top[0]]) if lie is None else lie
                post.add_fantasy(top[0], value)
                best = min(best, value)  # a believed improvement raises the bar
        return out


class _Pool:
    """Snapped candidates with their scores; configs and keys made only when ranked high."""

    def __init__(self, space: SearchSpace, taken: set[tuple[Any, ...]]) -> None:
        self.space = space
        self.taken = taken
        self.xt = np.empty((0, space.space.transformed_n_dims))
        self.score = np.empty(0)
        self._configs: dict[int, Config] = {}
        self._keys: dict[int, tuple[Any, ...]] = {}

    def add(self, xt: np.ndarray) -> None:
        """Append candidates; ``score`` is set, for all of them, before each pick."""
        self.xt = np.vstack([self.xt, xt])

    def _convert(self, idx: Sequence[int]) -> None:
        """Configs and keys of ``idx`` in one inverse transform (a per-row call is slow)."""
        todo = [i for i in idx if i not in self._keys]
        if todo:
            for i, config in zip(todo, self.space.inverse_transform(self.xt[todo]), strict=True):
                self._configs[i] = config
                self._keys[i] = self.space.key(config)

    def top(self, k: int) -> list[int]:
        """Indices of the ``k`` best-scoring distinct candidates not yet taken."""
        out: list[int] = []
        seen: set[tuple[Any, ...]] = set()
        order = np.argsort(-self.score, kind="stable")
        for start in range(0, len(order), 2 * k):
            chunk = [int(i) for i in order[start : start + 2 * k]]
            self._convert(chunk)
            for i in chunk:
                key = self._keys[i]
                if key in self.taken or key in seen:
                    continue
                seen.add(key)
                out.append(i)
                if len(out) >= k:
                    return out
        return out

    def take(self, i: int) -> Config:
        self._convert([i])
        self.taken.add(self._keys[i])
        return self._configs[i]


def log_h(z: np.ndarray) -> np.ndarray:
    """log(phi(z) + z Phi(z)), the log of EI / sigma, without underflow for z << 0.

    phi(z) + z Phi(z) = phi(z) (1 + z sqrt(pi/2) erfcx(-z / sqrt 2)); erfcx keeps the
    Mills ratio finite where Phi(z) itself underflows.
    """
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    big = z > -1.0
    zb = z[big]
    out[big] = np.log(np.exp(-0.5 * zb * zb) / math.sqrt(2 * math.pi) + zb * np.exp(log_ndtr(zb)))
    zs = z[~big]
    inner = 1.0 + zs * math.sqrt(math.pi / 2) * erfcx(-zs / math.sqrt(2))
    out[~big] = -0.5 * zs * zs - 0.5 * math.log(2 * math.pi) + np.log(np.maximum(inner, 1e-300))
    return out


def rank_quantiles(y: np.ndarray) -> np.ndarray:
    """Each value's rank as a quantile in (0, 1), ties averaged (the copula's input)."""
    return (rankdata(y, method="average") - 0.5) / len(y)


def half_rank(y: np.ndarray) -> np.ndarray:
    """Vizier's half-rank output warp (Song et al., 2022), for a minimized objective.

    The better half (at or below the median) keeps its values; the worse half is
    replaced, by rank, with the upper half of a normal distribution centred on the
    median and as wide as the better half. Diverged or crashed trials then sit a
    couple of standard deviations out instead of tens, so the GP spends its
    resolution among the good configurations rather than on the cliff.
    """
    m = float(np.median(y))
    good = y[y <= m]
    scale = math.sqrt(float(np.mean((good - m) ** 2))) or float(np.std(y)) or 1.0
    bad = y > m
    quantile = rank_quantiles(y)
    out = y.astype(float).copy()
    out[bad] = m + scale * ndtri(quantile[bad])
    return out


def warp(y: np.ndarray, kind: str) -> np.ndarray:
    """Monotone transform of the objective (minimized), then standardized."""
    if kind.startswith("half-rank"):
        y = half_rank(y)
        kind = kind.removeprefix("half-rank").removeprefix("+") or "none"
    if kind == "copula":
        y = ndtri(rank_quantiles(y))
    elif kind == "yeo-johnson":
        from sklearn.preprocessing import PowerTransformer

        y = (y - y.mean()) / (float(y.std()) or 1.0)  # so that the warp ignores units
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y = PowerTransformer(method="yeo-johnson").fit_transform(y[:, None])[:, 0]
    elif kind == "log":
        spread = float(y.max() - y.min()) or 1.0
        y = np.log(y - y.min() + 1e-3 * spread)
    elif kind != "none":
        raise ValueError(f"Y_WARP: unknown warp {kind!r} (none, yeo-johnson, copula, log, "
                         "half-rank or half-rank+<one of those>)")
    return (y - y.mean()) / (float(y.std()) or 1.0)
