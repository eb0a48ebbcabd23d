"""The seed experiment on a surrogate: gp vs random on digits in seconds, not 40 minutes.

    .venv/bin/python benchmarks/seed_surrogate.py                      # 40 repeats
    .venv/bin/python benchmarks/seed_surrogate.py --gp-set Y_WARP='"half-rank"'
    .venv/bin/python benchmarks/seed_surrogate.py --oracle-band 1e-4,3e-3  # + the ceiling

Why: one real run of ``seed_reproduction.py`` takes 40 minutes and gives 5 repeats,
too few to tell a better suggester from a lucky one. Surrogate benchmarks
(Eggensperger et al., AAAI 2015) replace the training with a regression model fitted
to real trainings. Here: a random forest fitted to every training of a saved
``seed_reproduction.json`` (config -> validation accuracy, inputs in kubetune's
scaled space), plus the binomial sampling noise of the validation set (288 images).
It is a development tool for choosing among suggester variants; the figures that
count are the real run's (RESULTS.md).

Prints the median best-seen traces of both methods, where gp's median falls below
random's, when gp reaches random's 80-evaluation median, and how often a 5-repeat
study (bootstrap resamples of the repeats) would meet both of the issue's targets.
``--oracle-band`` adds a prescient random search that knows the good learning-rate
band from its first model-guided trial: what a perfect model of the learning rate
alone would buy in this world (``seed_ceiling.py`` asks the same of real trainings).
``--methods`` adds the optimizers users would pick instead (Optuna's TPE and
GPSampler, scikit-optimize's gp_minimize), run by ``problems.METHODS`` with their own
defaults and initial designs, one configuration at a time: is the seed task's
target within a mainstream Bayesian optimizer's reach?
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import ValidationError

sys.path.insert(0, str(Path(__file__).resolve().parent))

from problems import METHODS, Problem, unavailable
from seed_ceiling import load_saved, parse_band
from seed_reproduction import meets_targets, spans, target_figures, trial_accuracy

from kubetune.api import load_experiment
from kubetune.api.errors import describe
from kubetune.api.spec import Algorithm, GPSettings
from kubetune.space import SearchSpace
from kubetune.suggest import Observation, make_suggester

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "examples" / "digits-quick.yaml"
SAVED = Path(__file__).resolve().parent / "out" / "seed_reproduction.json"
OWN = ("gp", "random")  # kubetune's suggesters, with the manifest's initial design
# The optimizers users would pick instead: problems.METHODS less kubetune's own adapters.
OTHERS = tuple(m for m in METHODS if not m.startswith("kubetune-"))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--evals", type=int, default=80)
    ap.add_argument("--initial-points", type=int, default=None,
                    help="default: the manifest's")
    ap.add_argument("--saved", type=Path, default=SAVED, help="a seed_reproduction.json")
    ap.add_argument("--val-images", type=int, default=288)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--oracle-band", default=None, metavar="LO,HI",
                    help="also run a prescient random search whose learning rate stays in "
                         "[LO, HI] after the initial design (the ceiling; see seed_ceiling.py)")
    ap.add_argument("--methods", default=",".join(OWN),
                    help=f"comma-separated, from {', '.join(OWN + OTHERS)} (gp and random "
                         "are always run: the targets compare gp with random)")
    ap.add_argument("--gp", default="{}", metavar="JSON",
                    help='spec.algorithm.gp settings, e.g. \'{"acquisition": "pi"}\'')
    ap.add_argument("--gp-set", action="append", default=[], metavar="NAME=VALUE",
                    help="override a kubetune.suggest.gp constant, repeatable")
    args = ap.parse_args(argv)
    args.band = None
    if args.oracle_band is not None:
        args.band = parse_band(ap, "--oracle-band", args.oracle_band)
    args.runs = load_saved(ap, args.saved)[0]
    args.methods = parse_methods(ap, args.methods)
    try:
        args.gp_settings = GPSettings.model_validate(json.loads(args.gp))
    except json.JSONDecodeError as e:
        ap.error(f"--gp {args.gp}: not JSON ({e})")
    except ValidationError as e:
        ap.error("--gp: " + "; ".join(str(p) for p in describe(e, prefix="gp")))
    return args


def parse_methods(ap: argparse.ArgumentParser, text: str) -> tuple[str, ...]:
    """gp and random first, then the other methods asked for; unknown or missing ones fail."""
    asked = [m.strip() for m in text.split(",") if m.strip()]
    for m in asked:
        if m not in OWN + OTHERS:
            ap.error(f"--methods {text}: unknown method {m!r} (choose from "
                     f"{', '.join(OWN + OTHERS)})")
        why = unavailable(m)
        if why:
            ap.error(f"--methods {text}: {m} cannot run here: {why}")
    return OWN + tuple(dict.fromkeys(m for m in asked if m not in OWN))


class Surrogate:
    """Validation accuracy of a config: forest mean + seeded noise, whole images."""

    def __init__(self, space: SearchSpace, runs: Sequence[dict[str, Any]],
                 val_images: int) -> None:
        from sklearn.ensemble import RandomForestRegressor

        seen: dict[tuple[Any, ...], tuple[dict[str, Any], float]] = {}
        for run in runs:
            for t in run["trials"]:
                seen[(run["repeat"], space.key(t["config"]))] = (t["config"], trial_accuracy(t))
        configs = [c for c, _ in seen.values()]
        y = np.array([v for _, v in seen.values()])
        self.space = space
        self.forest = RandomForestRegressor(n_estimators=300, min_samples_leaf=2,
                                            oob_score=True, random_state=0, n_jobs=1)
        self.forest.fit(self._x(configs), y)
        resid = y - self.forest.oob_prediction_
        self.noise = float(np.std(resid[y >= 0.9]))  # forest error + noise: reported only
        self.val_images = val_images
        self.n = len(y)

    def _x(self, configs: Sequence[dict[str, Any]]) -> np.ndarray:
        return np.asarray(self.space.transform(list(configs)), dtype=float)

    def __call__(self, config: dict[str, Any], rng: np.random.Generator) -> float:
        mean = float(np.clip(self.forest.predict(self._x([config]))[0], 0.0, 1.0))
        return float(rng.binomial(self.val_images, mean) / self.val_images)


_STATE: dict[str, Any] = {}


def _init(args: argparse.Namespace) -> None:
    from optimizers import apply_gp_set
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    apply_gp_set(args.gp_set)
    spec = load_experiment(yaml.safe_load(MANIFEST.read_text())).spec
    space = SearchSpace(spec.parameters)
    _STATE.update(spec=spec, space=space, f=Surrogate(space, args.runs, args.val_images),
                  args=args)
    if args.band:  # the same space with the learning rate confined to the band
        lo, hi = args.band
        params = [p.model_copy(update={"min": lo, "max": hi}) if p.name == "learning_rate"
                  else p for p in spec.parameters]
        _STATE["band_space"] = SearchSpace(params)


def _score(config: dict[str, Any], repeat: int) -> float:
    """The surrogate's accuracy, its noise seeded by (repeat, config): the same training
    gives the same score, whichever method proposed it."""
    key = _STATE["space"].key(config)
    return _STATE["f"](config, np.random.default_rng([repeat, zlib.crc32(repr(key).encode())]))


def _run(task: tuple[str, int]) -> tuple[str, int, list[float]]:
    method, repeat = task
    spec, space, args = _STATE["spec"], _STATE["space"], _STATE["args"]
    if method in OTHERS:  # as users run them: their own defaults, seeded by the repeat
        problem = Problem("seed-surrogate", list(spec.parameters),
                          lambda c: -_score(dict(c), repeat))
        trace = METHODS[method](problem, repeat, args.evals, 1)
        return method, repeat, [-v for v in trace.values]
    initial = args.initial_points or spec.algorithm.initial_points
    algorithm = Algorithm.model_validate({"name": "random" if method == "oracle" else method,
                                          "seed": repeat, "initialPoints": initial})
    algorithm = algorithm.model_copy(update={"gp": args.gp_settings})
    sugg = make_suggester(space, algorithm, spec.objective.goal)
    if method == "oracle":  # random's initial design, then only the band
        band = make_suggester(_STATE["band_space"], algorithm, spec.objective.goal)
    history: list[Observation] = []
    values: list[float] = []
    for i in range(args.evals):
        s = band if method == "oracle" and i >= initial else sugg
        config = s.suggest(history, [], 1, issued=[o.config for o in history])[0]
        v = _score(config, repeat)
        history.append(Observation(config, v))
        values.append(v)
    return method, repeat, values


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    _init(args)  # bad input fails here, once, not in every pool worker
    methods = args.methods + (("oracle",) if args.band else ())
    tasks = [(m, r) for r in range(args.repeats) for m in methods]
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.jobs, initializer=_init, initargs=(args,)) as pool:
        out = pool.map(_run, tasks)
    print(f"surrogate: random forest on {_STATE['f'].n} trainings, out-of-bag residual sd "
          f"{_STATE['f'].noise:.4f} at accuracy >= 0.9; gp-set {args.gp_set or 'none'}, gp {args.gp}")
    raw = {m: np.array([v for mm, _, v in sorted(out) if mm == m]) for m in methods}
    curves = {m: np.maximum.accumulate(v, axis=1) for m, v in raw.items()}
    w = max(map(len, methods)) + 1  # column of the method names
    budgets = [b for b in (5, 10, 15, 20, 25, 30, 40, 60, 80) if b <= args.evals]
    for m, c in curves.items():
        med = np.median(c, axis=0)
        print(f"{m:{w}s}" + " ".join(f"@{b}:{med[b - 1]:.4f}" for b in budgets))
    contenders = [m for m in methods if m != "random"]  # each judged against random
    for m in contenders:
        print(f"targets (all repeats), {m}:", verdict(curves[m], curves["random"]))
    phases = [(a, b) for a, b in ((7, 20), (21, 40), (41, 80)) if b <= args.evals]
    for m, v in raw.items() if phases else ():  # as the real report: accuracy < 0.5
        print(f"{m:{w}s}diverged " + " ".join(
            f"{a}-{b}:{np.mean(v[:, a - 1:b] < 0.5):.0%}" for a, b in phases))
    if args.evals < 20:  # 'within 20' would hold by construction: no odds to give
        print("5-repeat odds of the targets: not computed, they need at least 20 evaluations")
        return 0
    for m in contenders:
        met = study_odds(curves[m], curves["random"])
        print(f"{m}: 5-repeat studies meeting 'every budget' {met[0]:.0%}, "
              f"'within 20' {met[1]:.0%}, both {met[2]:.0%}")
    return 0


def study_odds(curves: np.ndarray, rnd: np.ndarray, draws: int = 2000) -> np.ndarray:
    """Shares of 5-repeat studies (bootstrap, paired repeats) meeting each target, both."""
    rng = np.random.default_rng(0)
    met = np.zeros(3)
    for _ in range(draws):
        idx = rng.integers(0, len(curves), 5)
        ok_every, ok_reach = check(curves[idx], rnd[idx])
        met += (ok_every, ok_reach, ok_every and ok_reach)
    return met / draws


def check(gp: np.ndarray, rnd: np.ndarray) -> tuple[bool, bool]:
    every, within, _ = meets_targets(np.median(gp, axis=0), np.median(rnd, axis=0))
    return every, within


def verdict(gp: np.ndarray, rnd: np.ndarray) -> str:
    below, reach, _ = target_figures(np.median(gp, axis=0), np.median(rnd, axis=0))
    where = f"at {reach}" if reach else f"never within {gp.shape[1]}"
    return f"below random at {spans(below)}; reaches random's final median {where}"


if __name__ == "__main__":
    sys.exit(main())
