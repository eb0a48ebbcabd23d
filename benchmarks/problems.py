"""Test functions and optimizer adapters shared by the benchmarks.

Every problem is expressed as kubetune parameters, so that kubetune's suggesters,
scikit-optimize and Optuna all search exactly the same space (same bounds, same log
scales, same categorical choices), and every objective is minimized.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kubetune.api.spec import Algorithm, Goal, Parameter
from kubetune.space import Config, SearchSpace
from kubetune.suggest import Observation, make_suggester

Objective = Callable[[Mapping[str, Any]], float]


@dataclass(frozen=True)
class Problem:
    """A search space, an objective to minimize, and its known minimum (if any)."""

    name: str
    parameters: list[Parameter]
    objective: Objective
    optimum: float | None = None
    description: str = ""


def _p(name: str, type_: str, **kw: Any) -> Parameter:
    return Parameter(name=name, type=type_, **kw)


# ---------------------------------------------------------------------------- Branin
def branin(c: Mapping[str, Any]) -> float:
    x1, x2 = float(c["x1"]), float(c["x2"])
    a, b, cc = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi
    r, s, t = 6.0, 10.0, 1 / (8 * math.pi)
    return a * (x2 - b * x1**2 + cc * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


# ------------------------------------------------------------------------- Hartmann6
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array([
    [10, 3, 17, 3.5, 1.7, 8],
    [0.05, 10, 17, 0.1, 8, 14],
    [3, 3.5, 1.7, 10, 17, 8],
    [17, 8, 0.05, 10, 0.1, 14],
])
_H6_P = 1e-4 * np.array([
    [1312, 1696, 5569, 124, 8283, 5886],
    [2329, 4135, 8307, 3736, 1004, 9991],
    [2348, 1451, 3522, 2883, 3047, 6650],
    [4047, 8828, 8732, 5743, 1091, 381],
])


def hartmann6(c: Mapping[str, Any]) -> float:
    x = np.array([float(c[f"x{i}"]) for i in range(1, 7)])
    return float(-(_H6_ALPHA * np.exp(-(_H6_A * (x - _H6_P) ** 2).sum(axis=1))).sum())


# ------------------------------------------------------------------------ CNN-like
CNN_PARAMETERS = [
    _p("learning_rate", "double", min=1e-5, max=1.0, scale="log"),
    _p("momentum", "double", min=0.5, max=0.99),
    _p("optimizer", "categorical", values=["sgd", "adam", "rmsprop"]),
    _p("batch_size", "categorical", values=[16, 32, 64, 128, 256]),
    _p("conv_depth", "int", min=8, max=128, scale="log"),
    _p("kernel_width", "int", min=3, max=9),
    _p("keep_prob", "double", min=0.2, max=1.0),
    _p("weight_decay", "double", min=1e-6, max=1e-2, scale="log"),
]
# Best learning rate per optimizer at batch size 64 (for sgd: of lr / (1 - momentum)).
_BEST_LR = {"sgd": 10**-0.3, "adam": 10**-3.0, "rmsprop": 10**-3.4}
_OPT_OFFSET = {"sgd": -0.004, "adam": 0.0, "rmsprop": 0.006}


def cnn_surface(c: Mapping[str, Any]) -> float:
    """Validation error of an imaginary CNN: a deterministic, mixed-type response surface.

    Shaped like real tuning data: a log-scale learning-rate valley whose position
    depends on the optimizer and the batch size (and, for sgd, on momentum), a
    divergence cliff (error 0.9, like a NaN loss) above it, diminishing returns in
    width, overfitting that dropout and weight decay trade off. Minimum about 0.02.
    """
    opt = str(c["optimizer"])
    bs = float(c["batch_size"])
    lr = float(c["learning_rate"])
    mom = float(c["momentum"])
    depth = float(c["conv_depth"])
    width = float(c["kernel_width"])
    keep = float(c["keep_prob"])
    wd = float(c["weight_decay"])
    eff = lr / (1.0 - mom) if opt == "sgd" else lr
    u = math.log10(eff / (_BEST_LR[opt] * math.sqrt(bs / 64.0)))
    if u > 1.0 + 0.4 * (opt == "adam"):  # diverges
        return 0.9
    lr_term = 0.05 * u * u if u < 0 else 0.12 * u * u
    mom_term = 0.0 if opt == "sgd" else 0.04 * (mom - 0.9) ** 2 / 0.16
    capacity = 0.10 * math.exp(-(math.log2(depth) - 3.0) / 1.3)
    overfit = 0.04 * (depth / 128.0) * (keep - 0.45 - 0.15 * math.log2(depth / 8.0) / 4.0) ** 2
    reg = 0.012 * (math.log10(wd) + 4.0 - 0.8 * (1.0 - keep)) ** 2 / 4.0
    width_term = 0.004 * (width - 5.0) ** 2 * (1.0 + 0.5 * (depth < 24))
    bs_term = 0.006 * math.log2(bs / 32.0) ** 2
    err = 0.02 + lr_term + mom_term + capacity + overfit + reg + width_term + bs_term
    return float(min(0.9, err + _OPT_OFFSET[opt] + 0.004))


PROBLEMS: dict[str, Problem] = {
    "branin": Problem(
        "branin",
        [_p("x1", "double", min=-5.0, max=10.0), _p("x2", "double", min=0.0, max=15.0)],
        branin, 0.397887, "2-D, three global minima",
    ),
    "hartmann6": Problem(
        "hartmann6",
        [_p(f"x{i}", "double", min=0.0, max=1.0) for i in range(1, 7)],
        hartmann6, -3.32237, "6-D, one narrow global minimum",
    ),
    "cnn_mixed": Problem(
        "cnn_mixed", CNN_PARAMETERS, cnn_surface, None,
        "8-D: 2 log doubles, 2 doubles, 1 log int, 1 int, 2 categoricals",
    ),
}


# ------------------------------------------------------------------------- runners
@dataclass
class Trace:
    """One optimization run: objective values in evaluation order and ask times."""

    values: list[float] = field(default_factory=list)
    ask_seconds: list[float] = field(default_factory=list)  # one per ask (batch)

    def best_seen(self) -> np.ndarray:
        return np.minimum.accumulate(np.asarray(self.values, dtype=float))


def run_kubetune(problem: Problem, algorithm: str, seed: int, evals: int, batch: int) -> Trace:
    """kubetune's suggester, rebuilt from the record on every ask as the operator does."""
    space = SearchSpace(problem.parameters)
    suggester = make_suggester(space, Algorithm(name=algorithm, seed=seed), Goal.minimize)
    history: list[Observation] = []
    trace = Trace()
    while len(history) < evals:
        started = time.perf_counter()
        configs = suggester.suggest(history, [], min(batch, evals - len(history)),
                                    issued=[o.config for o in history])
        trace.ask_seconds.append(time.perf_counter() - started)
        if not configs:
            break
        for config in configs:
            value = problem.objective(config)
            history.append(Observation(config, value))
            trace.values.append(value)
    return trace


def skopt_optimizer(problem: Problem, seed: int) -> tuple[Any, SearchSpace]:
    """An ``Optimizer`` built exactly as ``gp_minimize`` builds it, with its defaults."""
    from skopt import Optimizer
    from skopt.utils import cook_estimator, normalize_dimensions

    space = SearchSpace(problem.parameters)
    rng = np.random.RandomState(seed)
    dims = normalize_dimensions(space.space.dimensions)
    estimator = cook_estimator("GP", space=dims, random_state=rng.randint(0, np.iinfo(np.int32).max),
                               noise="gaussian")
    optimizer = Optimizer(
        dims, estimator, n_initial_points=10, initial_point_generator="random", n_jobs=1,
        acq_func="gp_hedge", acq_optimizer="auto", random_state=rng,
        acq_optimizer_kwargs={"n_points": 10000, "n_restarts_optimizer": 5, "n_jobs": 1},
        acq_func_kwargs={"xi": 0.01, "kappa": 1.96},
    )
    return optimizer, space


def run_skopt(problem: Problem, seed: int, evals: int, batch: int) -> Trace:
    """gp_minimize's loop (ask, evaluate, tell); batches via ask(n_points), constant liar."""
    optimizer, space = skopt_optimizer(problem, seed)
    trace = Trace()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while len(trace.values) < evals:
            k = min(batch, evals - len(trace.values))
            started = time.perf_counter()
            points = [optimizer.ask()] if k == 1 else optimizer.ask(n_points=k)
            trace.ask_seconds.append(time.perf_counter() - started)
            values = [problem.objective(space.from_point(p)) for p in points]
            trace.values += values
            started = time.perf_counter()
            optimizer.tell(points, values)  # skopt fits the GP in tell: part of the ask cost
            trace.ask_seconds[-1] += time.perf_counter() - started
    return trace


def _optuna_params(trial: Any, parameters: Sequence[Parameter]) -> Config:
    config: Config = {}
    for p in parameters:
        log = p.scale == "log"
        if p.type == "double":
            config[p.name] = trial.suggest_float(p.name, p.min, p.max, log=log)
        elif p.type == "int":
            config[p.name] = trial.suggest_int(p.name, int(p.min), int(p.max), log=log)
        else:
            config[p.name] = trial.suggest_categorical(p.name, p.values)
    return config


def optuna_available(sampler: str) -> str | None:
    """None when the sampler can run here, else why not."""
    try:
        import optuna  # noqa: F401
    except ImportError as err:
        return f"optuna not installed ({err})"
    if sampler == "gp":
        try:
            import torch  # noqa: F401
        except ImportError:
            return "optuna GPSampler needs PyTorch, which is not installed"
    return None


def run_optuna(problem: Problem, sampler_name: str, seed: int, evals: int, batch: int) -> Trace:
    """Optuna ask/tell: ask ``batch`` trials, evaluate them, tell them."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if sampler_name == "tpe":
        sampler: Any = optuna.samplers.TPESampler(seed=seed)
    else:
        sampler = optuna.samplers.GPSampler(seed=seed)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    trace = Trace()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while len(trace.values) < evals:
            k = min(batch, evals - len(trace.values))
            started = time.perf_counter()
            trials = [study.ask() for _ in range(k)]
            configs = [_optuna_params(t, problem.parameters) for t in trials]
            trace.ask_seconds.append(time.perf_counter() - started)
            for trial, config in zip(trials, configs, strict=True):
                value = problem.objective(config)
                trace.values.append(value)
                study.tell(trial, value)
    return trace


METHODS: dict[str, Callable[[Problem, int, int, int], Trace]] = {
    "kubetune-gp": lambda p, s, e, b: run_kubetune(p, "gp", s, e, b),
    "kubetune-random": lambda p, s, e, b: run_kubetune(p, "random", s, e, b),
    "skopt-gp_minimize": run_skopt,
    "optuna-tpe": lambda p, s, e, b: run_optuna(p, "tpe", s, e, b),
    "optuna-gp": lambda p, s, e, b: run_optuna(p, "gp", s, e, b),
}


def unavailable(method: str) -> str | None:
    if method == "optuna-tpe":
        return optuna_available("tpe")
    if method == "optuna-gp":
        return optuna_available("gp")
    return None
