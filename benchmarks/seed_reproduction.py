"""The seed study's experiment on digits: Bayesian optimization vs random search for a CNN.

    .venv/bin/python benchmarks/seed_reproduction.py           # 5 repeats x {gp, random} x 80
    .venv/bin/python benchmarks/seed_reproduction.py --quick   # CI smoke, a few minutes

Search space, objective and trainer arguments come from ``examples/digits-quick.yaml``
(the seed's 8 CNN hyperparameters); configurations are proposed by kubetune's own
``make_suggester`` over ``SearchSpace`` and reach the trainer as the operator passes
them (``kubetune.trials.parameter_args`` -> ``kubetune_trainer.config.parse_args``).
Trials run in ``--workers`` persistent processes that import TensorFlow and load the
data once (``kubetune_trainer.train.run(config, data)``), one TF thread each.

Repeat r uses trainer seed r (its train/validation split and initialization) and
suggester seed r for both methods, so gp's initial design equals random's and those
trials are trained once and shared. Every trial also scores the fixed held-out test
slice, so the test accuracy of each run's best-validation configuration needs no
retraining. Outputs in ``--out``: ``seed_reproduction[-quick].{json,md,png}``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import itertools
import json
import math
import multiprocessing as mp
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from kubetune.api import load_experiment
from kubetune.api.spec import Algorithm, ExperimentSpec
from kubetune.space import SearchSpace
from kubetune.suggest import Observation, make_suggester
from kubetune.trials import parameter_args

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "examples" / "digits-quick.yaml"
RECYCLE = 150  # trials per worker process before it is replaced
PRICE = 2.60  # dollars per observation: one g2.8xlarge hour, the seed's figure
LEVELS = (0.90, 0.93, 0.95, 0.96, 0.97, 0.98, 0.99)
# Chosen to fit the 60-minute budget on 2 cores (see RESULTS.md for measured trial times).
DEFAULTS = {"repeats": 5, "evals": 80, "epochs": 1, "max_train_images": 0,
            "levels": ",".join(map(str, LEVELS))}
QUICK = {"repeats": 2, "evals": 8, "epochs": 1, "max_train_images": 200, "initial_points": 3,
         "levels": "0.3,0.5,0.7,0.9"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=None, help=f"default {DEFAULTS['repeats']}")
    ap.add_argument("--evals", type=int, default=None, help=f"default {DEFAULTS['evals']}")
    ap.add_argument("--epochs", type=int, default=None,
                    help=f"trainer epochs (default {DEFAULTS['epochs']}; the manifest says 4)")
    ap.add_argument("--max-train-images", type=int, default=None,
                    help="cap on training images (default: all 1150)")
    ap.add_argument("--initial-points", type=int, default=None,
                    help="random configurations before the GP (default: the manifest's)")
    ap.add_argument("--methods", default="gp,random")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="trainer processes, one TensorFlow thread each (default: cores)")
    ap.add_argument("--price", type=float, default=PRICE, help="dollars per observation")
    ap.add_argument("--levels", default=None,
                    help=f"validation accuracies of the cost table (default {LEVELS})")
    ap.add_argument("--manifest", type=Path, default=MANIFEST)
    ap.add_argument("--quick", action="store_true", help="2 repeats x 8 evals, 1 epoch, "
                    "200 images: a smoke test of the whole pipeline for CI")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    ap.add_argument("--from-json", type=Path, default=None, metavar="PATH",
                    help="only re-summarize and re-plot the saved run PATH (no training); "
                    "give the same --quick/--epochs as that run")
    args = ap.parse_args(argv)
    preset = {**DEFAULTS, **(QUICK if args.quick else {})}
    for key, value in preset.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


# -------------------------------------------------------------------------- workers
_DATA: dict[tuple[Any, ...], Any] = {}


def _init_worker() -> None:
    """Import TensorFlow once per worker, quietly, single-threaded."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["KUBETUNE_TRAINER_THREADS"] = "1"
    sys.stdout = sys.stderr  # Keras progress never mixes with the benchmark's output
    from kubetune_trainer import train

    train._import_tf()


def _train(argv: list[str]) -> dict[str, Any]:
    """One trial from its command line, with the data loaded once per split."""
    from kubetune_trainer.config import parse_args as trainer_args
    from kubetune_trainer.data import load
    from kubetune_trainer.train import run

    cfg = trainer_args(argv)
    key = (cfg.dataset, cfg.seed, cfg.val_fraction, cfg.max_train_images, cfg.test)
    if key not in _DATA:
        _DATA[key] = load(cfg)
    started = time.perf_counter()
    try:
        result = run(cfg, _DATA[key])
    except Exception as err:  # a crashed trial is a failed trial, as in the operator
        result = {"status": "failed", "reason": f"{type(err).__name__}: {err}"}
    result["wall_seconds"] = round(time.perf_counter() - started, 3)
    return result


# ---------------------------------------------------------------------------- runs
@dataclass
class Run:
    method: str
    repeat: int
    suggester: Any
    trials: list[dict[str, Any]] = field(default_factory=list)
    waiting: Any = None  # the config whose result is awaited

    def history(self) -> list[Observation]:
        return [Observation(t["config"], t["val_accuracy"] if t["status"] == "ok" else None)
                for t in self.trials]


def trainer_argv(spec: ExperimentSpec, config: Mapping[str, Any] | None,
                 args: argparse.Namespace, seed: int) -> list[str]:
    """The trial container's args from the manifest, the parameters, then our overrides.

    ``config=None``: no tuned parameters, so the trainer's defaults fill them in (the
    untuned CNN).
    """
    base = list(spec.trial_template.container.get("args") or [])
    params = parameter_args(spec, config) if config is not None else []
    extra = [f"--epochs={args.epochs}", f"--seed={seed}", "--test=true"]
    if args.max_train_images:
        extra.append(f"--max_train_images={args.max_train_images}")
    return [*base, *params, *extra]


def run_study(spec: ExperimentSpec, args: argparse.Namespace) -> tuple[list[Run], dict[str, Any]]:
    space = SearchSpace(spec.parameters)
    initial = args.initial_points or spec.algorithm.initial_points
    runs = [Run(m, r, make_suggester(space, Algorithm(name=m, seed=r, initial_points=initial),
                                     spec.objective.goal))
            for r in range(args.repeats) for m in args.methods.split(",")]
    cache: dict[tuple[Any, ...], cf.Future[dict[str, Any]]] = {}
    baseline: dict[str, Any] = {}
    ask_seconds: list[float] = []
    ctx = mp.get_context("spawn")
    started = time.perf_counter()
    reported = 0
    # A worker's memory grows by ~10 MB per trial (TensorFlow keeps state across
    # clear_session); replacing each worker every RECYCLE trials bounds it (~10 s each).
    with cf.ProcessPoolExecutor(args.workers, mp_context=ctx, initializer=_init_worker,
                                max_tasks_per_child=RECYCLE) as pool:
        # The untuned CNN (the trainer's defaults for the 8 tuned parameters), per repeat.
        defaults = [pool.submit(_train, trainer_argv(spec, None, args, r))
                    for r in range(args.repeats)]
        while True:
            active = [run for run in runs if len(run.trials) < args.evals]
            if not active:
                break
            for run in active:
                if run.waiting is not None:
                    continue
                history = run.history()
                t0 = time.perf_counter()
                configs = run.suggester.suggest(history, [], 1,
                                                issued=[t["config"] for t in run.trials])
                ask_seconds.append(time.perf_counter() - t0)
                if not configs:  # space exhausted (cannot happen with doubles)
                    run.trials += [run.trials[-1]] * (args.evals - len(run.trials))
                    continue
                key = (run.repeat, space.key(configs[0]))
                if key not in cache:
                    cache[key] = pool.submit(_train, trainer_argv(spec, configs[0], args,
                                                                  run.repeat))
                run.waiting = (configs[0], cache[key])
            waiting = [run.waiting[1] for run in runs if run.waiting is not None]
            cf.wait(waiting, return_when=cf.FIRST_COMPLETED)
            for run in runs:
                if run.waiting is not None and run.waiting[1].done():
                    config, future = run.waiting
                    result = future.result()
                    run.trials.append({"config": config, **result,
                                       "val_accuracy": result.get("val_accuracy")})
                    run.waiting = None
            done = sum(len(r.trials) for r in runs)
            if done >= reported + 20 or done == len(runs) * args.evals:
                reported = done
                print(f"[{time.perf_counter() - started:6.0f}s] {done}/{len(runs) * args.evals} "
                      f"observations, {len(cache)} trainings", file=sys.stderr, flush=True)
        baseline["untuned_cnn"] = [f.result() for f in defaults]
    baseline["random_forest"] = random_forest(args)
    baseline["ask_seconds"] = ask_seconds
    baseline["trainings"] = len(cache) + args.repeats
    return runs, baseline


def random_forest(args: argparse.Namespace) -> list[dict[str, Any]]:
    """RandomForestClassifier() on the same training split (8x8 pixels), per repeat."""
    from sklearn.datasets import load_digits
    from sklearn.ensemble import RandomForestClassifier

    from kubetune_trainer.config import TrainConfig
    from kubetune_trainer.data import load_digits as trainer_digits

    digits = load_digits()
    out = []
    for r in range(args.repeats):
        cfg = TrainConfig(dataset="digits", seed=r, test=True,
                          max_train_images=args.max_train_images or None)
        data = trainer_digits(cfg)
        assert data.test is not None
        clf = RandomForestClassifier(random_state=r).fit(
            digits.data[data.train.index], digits.target[data.train.index])
        out.append({
            "val_accuracy": float(clf.score(digits.data[data.val.index],
                                            digits.target[data.val.index])),
            "test_accuracy": float(clf.score(digits.data[data.test.index],
                                             digits.target[data.test.index])),
        })
    return out


# ------------------------------------------------------------------------ analysis
def trial_accuracy(trial: Mapping[str, Any]) -> float:
    """A trial's validation accuracy; a failed trial counts as 0 in every curve."""
    ok = trial["status"] == "ok" and trial.get("val_accuracy") is not None
    return float(trial["val_accuracy"]) if ok else 0.0


def best_seen(run: Run, evals: int) -> np.ndarray:
    return np.maximum.accumulate([trial_accuracy(t) for t in run.trials[:evals]])


def best_trial(run: Run) -> dict[str, Any] | None:
    ok = [t for t in run.trials if t["status"] == "ok" and t["val_accuracy"] is not None]
    return max(ok, key=lambda t: t["val_accuracy"]) if ok else None


def first_reach(curve: np.ndarray, level: float) -> float:
    hit = np.nonzero(curve >= level - 1e-12)[0]
    return float(hit[0] + 1) if len(hit) else math.inf


def summarize(runs: list[Run], baseline: dict[str, Any], args: argparse.Namespace,
              wall: float) -> tuple[str, dict[str, Any]]:
    methods = list(dict.fromkeys(r.method for r in runs))
    curves = {m: np.vstack([best_seen(r, args.evals) for r in runs if r.method == m])
              for m in methods}
    budgets = sorted({b for b in (5, 10, 20, 40, 80) if b <= args.evals} | {args.evals})
    levels = [float(x) for x in args.levels.split(",")]
    lines = [f"# Seed reproduction on digits{' (quick)' if args.quick else ''}", ""]
    lines.append(f"`{args.command}`  \n{args.finished} UTC, "
                 f"{machine()}, {args.workers} worker(s), {wall / 60:.1f} min, "
                 f"{baseline['trainings']} trainings.  ")
    manifest = args.manifest.resolve()
    shown = manifest.relative_to(ROOT) if manifest.is_relative_to(ROOT) else manifest
    lines.append(f"{args.repeats} repeats x {{{', '.join(methods)}}} x {args.evals} "
                 f"evaluations; search space and trainer args from `{shown}`"
                 f", overridden: epochs={args.epochs}"
                 + (f", max_train_images={args.max_train_images}" if args.max_train_images else "")
                 + f", {args.initial_points} initial random points.\n")
    lines += ["## Median best-seen validation accuracy (Figure 3)", "",
              "| method | " + " | ".join(f"@{b}" for b in budgets) + " |",
              "|---|" + "---|" * len(budgets)]
    for m in methods:
        lines.append(f"| {m} | " + " | ".join(f"{np.median(curves[m][:, b - 1]):.4f}"
                                               for b in budgets) + " |")
    lines += ["", "![median best-seen validation accuracy](" + png_name(args) + ")", ""]
    # Test accuracy of each run's best configuration.
    lines += ["## Held-out test accuracy", "",
              "| model | test accuracy (mean ± sd over repeats) | validation accuracy |",
              "|---|---|---|"]
    summary: dict[str, Any] = {"median_best_seen": {m: np.median(curves[m], axis=0).tolist()
                                                    for m in methods}}
    for m in methods:
        best = [best_trial(r) for r in runs if r.method == m]
        test = [b["test_accuracy"] for b in best if b and b.get("test_accuracy") is not None]
        val = [b["val_accuracy"] for b in best if b]
        summary[f"test_{m}"] = test
        lines.append(f"| kubetune {m}: best of {args.evals} | {mean_sd(test)} | {mean_sd(val)} |")
    untuned = [r for r in baseline["untuned_cnn"] if r.get("status") == "ok"]
    summary["test_untuned"] = [r["test_accuracy"] for r in untuned]
    lines.append(f"| untuned CNN (trainer defaults) | "
                 f"{mean_sd([r['test_accuracy'] for r in untuned])} | "
                 f"{mean_sd([r['val_accuracy'] for r in untuned])} |")
    rf = baseline["random_forest"]
    summary["test_random_forest"] = [r["test_accuracy"] for r in rf]
    lines.append(f"| RandomForestClassifier() on 8x8 pixels | "
                 f"{mean_sd([r['test_accuracy'] for r in rf])} | "
                 f"{mean_sd([r['val_accuracy'] for r in rf])} |")
    # Cost table.
    lines += ["", f"## Cost to first reach a validation accuracy (${args.price:.2f} per "
              "observation; median over repeats)", "",
              "| validation accuracy | " + " | ".join(methods) + " |",
              "|---|" + "---|" * len(methods)]
    summary["cost"] = {}
    for level in levels:
        cells = []
        for m in methods:
            hits = [first_reach(c, level) for c in curves[m]]
            med = float(np.median(hits))
            got = sum(math.isfinite(h) for h in hits)
            summary["cost"][f"{m}@{level}"] = med * args.price if math.isfinite(med) else None
            cells.append(cost_cell(med, args.price, got, len(hits)))
        lines.append(f"| {level:.2f} | " + " | ".join(cells) + " |")
    lines += ["", "(n obs, k/R): median observations needed, repeats that reached the level "
              f"within {args.evals}.", ""]
    lines += ["## What each method trained", "",
              "Validation accuracy of the trials themselves (all repeats; failed = 0), and "
              "their training time: the $ per observation model above ignores that gp's "
              "configurations may be larger.", "",
              "| method | evaluations | median accuracy | share < 0.5 (diverged) | "
              "share >= 0.975 | mean training s |", "|---|---|---|---|---|---|"]
    for lo, hi in _phases(args):
        for m in methods:
            trials = [t for r in runs if r.method == m for t in r.trials[lo:hi]]
            acc = np.array([_acc(t) for t in trials])
            secs = [t["train_seconds"] for t in trials if t.get("train_seconds") is not None]
            lines.append(f"| {m} | {lo + 1}-{hi} | {np.median(acc):.4f} | "
                         f"{np.mean(acc < 0.5):.0%} | {np.mean(acc >= 0.975):.0%} | "
                         + (f"{np.mean(secs):.1f} |" if secs else "- |"))
    lines.append("")
    lines += targets(curves, args.evals)
    asks = baseline.get("ask_seconds") or []
    if asks:
        lines += ["", f"Suggestion time per ask: median {np.median(asks):.3f} s, "
                  f"p95 {np.percentile(asks, 95):.3f} s, max {max(asks):.3f} s."]
    return "\n".join(lines) + "\n", summary


def cost_cell(median_obs: float, price: float, got: int, repeats: int) -> str:
    """One cost-table cell; a median of an even count can be a half observation."""
    if not math.isfinite(median_obs):
        return f"not reached ({got}/{repeats})"
    return f"${median_obs * price:,.2f} ({median_obs:g} obs, {got}/{repeats})"


def target_figures(gp: np.ndarray, rnd: np.ndarray) -> tuple[list[int], int | None, float]:
    """The issue's targets from median best-seen curves: the budgets where gp is below
    random, the first evaluation where gp reaches random's final median, that median."""
    below = [k + 1 for k in range(len(gp)) if gp[k] < rnd[k] - 1e-12]
    target = float(rnd[-1])
    hit = np.nonzero(gp >= target - 1e-12)[0]
    return below, (int(hit[0] + 1) if len(hit) else None), target


def spans(budgets: Sequence[int]) -> str:
    """Budgets as runs, whole: [2, 3, 4, 10, 11, 12] -> '2-4, 10-12' (a cut list misleads)."""
    runs: list[list[int]] = []
    for k in budgets:
        if runs and k == runs[-1][-1] + 1:
            runs[-1].append(k)
        else:
            runs.append([k])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs) or "none"


def meets_targets(gp: np.ndarray, rnd: np.ndarray) -> tuple[bool, bool, int | None]:
    """Both targets for median curves (every budget; within 20), and gp's reach."""
    below, reach, _ = target_figures(gp, rnd)
    return not below, reach is not None and reach <= 20, reach


def targets(curves: dict[str, np.ndarray], evals: int) -> list[str]:
    if "gp" not in curves or "random" not in curves:
        return []
    worse, reach, target = target_figures(np.median(curves["gp"], axis=0),
                                          np.median(curves["random"], axis=0))
    return [
        "## Targets", "",
        "- gp's median best-seen >= random's at every budget: "
        + ("MET" if not worse else f"NOT MET (below at {len(worse)} budgets: {spans(worse)})"),
        f"- gp reaches random's {evals}-evaluation median ({target:.4f}) within 20 evaluations: "
        + (f"{'MET' if reach <= 20 else 'NOT MET'} (at {reach})" if reach else "NOT MET (never)"),
    ]


def mean_sd(xs: Sequence[float]) -> str:
    if not xs:
        return "-"
    return f"{np.mean(xs):.4f} ± {np.std(xs):.4f}" if len(xs) > 1 else f"{xs[0]:.4f}"


def png_name(args: argparse.Namespace) -> str:
    return f"seed_reproduction{'-quick' if args.quick else ''}.png"


def plot(runs: list[Run], args: argparse.Namespace, path: Path) -> None:
    """Left: median best-seen with quartile bands (the seed's Figure 3). Right: what each
    method actually trained, as the distribution of its trials' validation accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r.method for r in runs))
    fig, (ax, box) = plt.subplots(1, 2, figsize=(12, 4.3))
    low = 1.0
    for i, m in enumerate(methods):
        c = np.vstack([best_seen(r, args.evals) for r in runs if r.method == m])
        x = np.arange(1, c.shape[1] + 1)
        q1, med, q3 = np.percentile(c, [25, 50, 75], axis=0)
        ax.plot(x, med, label=f"{m} (median of {len(c)})", color=f"C{i}")
        ax.fill_between(x, q1, q3, color=f"C{i}", alpha=0.2)
        low = min(low, float(q1[min(4, len(q1) - 1)]))
    ax.set_ylim(max(0.0, low - 0.01), 1.0)
    ax.set_xlabel("observations")
    ax.set_ylabel("best validation accuracy so far")
    ax.set_title("CNN on digits: median best-seen, quartile bands")
    ax.grid(alpha=0.3)
    ax.legend()
    phases = _phases(args)
    data, labels, colors = [], [], []
    for lo, hi in phases:
        for i, m in enumerate(methods):
            data.append([_acc(t) for r in runs if r.method == m for t in r.trials[lo:hi]])
            labels.append(f"{m}\n{lo + 1}-{hi}")
            colors.append(f"C{i}")
    parts = box.boxplot(data, patch_artist=True)
    for patch, color in zip(parts["boxes"], colors, strict=True):
        patch.set_facecolor(color)
        patch.set_alpha(0.4)
    box.set_xticks(range(1, len(labels) + 1), labels, fontsize=8)
    box.set_ylabel("validation accuracy of each trial")
    box.set_title("what each method trained (all repeats), by evaluation range")
    box.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _acc(trial: dict[str, Any]) -> float:
    """A trial's validation accuracy; a failed trial counts as 0."""
    value = trial.get("val_accuracy") if trial.get("status") == "ok" else None
    return float(value) if value is not None else 0.0


def _phases(args: argparse.Namespace) -> list[tuple[int, int]]:
    """Evaluation ranges: before the GP starts, then early, middle and late."""
    start = min(args.initial_points, args.evals)
    cuts = sorted({start, *(c for c in (20, 40) if start < c < args.evals), args.evals})
    return [(0, start), *itertools.pairwise(cuts)]


def machine() -> str:
    cpu = platform.processor() or "CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu})"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    spec = load_experiment(yaml.safe_load(args.manifest.read_text())).spec
    args.initial_points = args.initial_points or spec.algorithm.initial_points
    if args.from_json:  # re-summarize and re-plot a finished run, no training
        saved = json.loads(args.from_json.read_text())
        runs = [Run(r["method"], r["repeat"], None, r["trials"]) for r in saved["runs"]]
        baseline, wall = saved["baseline"], float(saved["wall_seconds"])
        args.command = saved.get("command", "benchmarks/seed_reproduction.py")
        args.finished = saved.get("finished") or datetime.fromtimestamp(
            args.from_json.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M")
        args.evals = max(len(r.trials) for r in runs)
        args.repeats = 1 + max(r.repeat for r in runs)
    else:
        started = time.perf_counter()
        runs, baseline = run_study(spec, args)
        wall = time.perf_counter() - started
        args.command = " ".join(sys.argv)
        args.finished = f"{datetime.now(UTC):%Y-%m-%d %H:%M}"
    text, summary = summarize(runs, baseline, args, wall)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "seed_reproduction" + ("-quick" if args.quick else "")
    plot(runs, args, args.out / png_name(args))
    (args.out / f"{stem}.md").write_text(text)
    (args.out / f"{stem}.json").write_text(json.dumps({
        "args": {k: str(v) for k, v in vars(args).items()},
        "command": args.command,
        "finished": args.finished,
        "wall_seconds": wall,
        "summary": summary,
        "runs": [{"method": r.method, "repeat": r.repeat, "trials": r.trials} for r in runs],
        "baseline": baseline,
    }, indent=1, default=str))
    print(text)
    print(f"wrote {args.out / stem}.md, .json, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
