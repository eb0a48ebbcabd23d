"""How well could ANY suggester do on the seed task? A prescient one, from real trainings.

    .venv/bin/python benchmarks/seed_ceiling.py                       # the committed run
    .venv/bin/python benchmarks/seed_ceiling.py --saved RUN.json --band 3e-4,1e-3

Why: the seed task's targets (gp at or above random at every budget, random's
80-evaluation median within 20) compare medians of 5 noisy best-seen curves, and a
real run takes 40-60 minutes. Before tuning the suggester further, this asks whether
the targets are reachable at all at this noise level. The "oracle" knows from its
first model-guided trial the learning-rate band where the good networks are and
never proposes outside it; otherwise it draws, without replacement, from the real
trainings of the same repeat (same train/validation split) whose learning rate lies
in the band: both methods' trainings, so the draws carry the run's real noise. Its
initial design is the run's. Against the run's real random-search curves it prints
the share of 5-repeat studies (resampled draws) that meet each target. A suggester
that still misses the targets in a large share of studies tells us the targets test
the noise of 288 validation images, not the suggester.

It is not a strict upper bound (an oracle could also know the best architecture),
but it is stronger than any model-guided search in its first 14 picks: those must
first learn the band from 6 random trials, half of which diverge.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from seed_reproduction import meets_targets, trial_accuracy

SAVED = Path(__file__).resolve().parent / "out" / "seed_reproduction.json"
BUDGETS = (5, 10, 15, 20, 25, 30, 40, 60, 80)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--saved", type=Path, default=SAVED, help="a seed_reproduction.json")
    ap.add_argument("--band", default="1e-4,3e-3", metavar="LO,HI",
                    help="the oracle's learning-rate band, [LO, HI)")
    ap.add_argument("--draws", type=int, default=2000, help="resampled 5-repeat studies")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.runs, args.initial, args.evals = load_saved(ap, args.saved)
    args.lo, args.hi = parse_band(ap, "--band", args.band)
    if args.draws < 1:
        ap.error(f"--draws {args.draws}: must be at least 1")
    return args


def parse_band(ap: argparse.ArgumentParser, option: str, text: str) -> tuple[float, float]:
    """A learning-rate band "LO,HI" with 0 < LO < HI, or exit 2 naming the option."""
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        ap.error(f"{option} {text}: expected two numbers LO,HI")
    if not 0 < lo < hi:
        ap.error(f"{option} {text}: needs 0 < LO < HI")
    return lo, hi


def load_saved(ap: argparse.ArgumentParser,
               saved: Path) -> tuple[list[dict[str, Any]], int, int]:
    """(runs, initial points, evaluations) of a seed_reproduction.json, or exit 2 naming
    the field that is missing or wrong."""
    where = f"--saved {saved}"
    if not saved.is_file():
        ap.error(f"{where}: no such file (a seed_reproduction.json)")
    try:
        data = json.loads(saved.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        ap.error(f"{where}: not JSON ({e})")
    field = "args.evals"
    try:
        evals = int(data["args"]["evals"])
        field = "args.initial_points"
        initial = int(data["args"].get("initial_points") or 6)
        field = "runs"
        for i, run in enumerate(data["runs"]):
            field = f"runs[{i}].method/repeat"
            if run["method"] not in ("gp", "random"):
                raise ValueError(f"unknown method {run['method']!r}")
            int(run["repeat"])
            for j, trial in enumerate(run["trials"]):
                field = f"runs[{i}].trials[{j}].config.learning_rate/status"
                float(trial["config"]["learning_rate"])
                trial_accuracy(trial)
    except (KeyError, TypeError, ValueError) as e:
        ap.error(f"{where}: {field}: missing or invalid ({type(e).__name__}: {e})")
    return data["runs"], initial, evals


def pools(runs: Sequence[Mapping[str, Any]], initial: int, lo: float,
          hi: float) -> dict[int, np.ndarray]:
    """Per repeat: accuracies of its distinct post-initial trainings in the band."""
    out: dict[int, dict[str, float]] = {}
    for run in runs:
        seen = out.setdefault(int(run["repeat"]), {})
        for t in run["trials"][initial:]:
            if lo <= float(t["config"]["learning_rate"]) < hi:
                seen[json.dumps(t["config"], sort_keys=True)] = trial_accuracy(t)
    return {r: np.array(list(v.values())) for r, v in sorted(out.items())}


def curves_of(runs: Sequence[Mapping[str, Any]], method: str) -> dict[int, np.ndarray]:
    return {int(r["repeat"]): np.maximum.accumulate([trial_accuracy(t) for t in r["trials"]])
            for r in runs if r["method"] == method}


def oracle_curve(first: np.ndarray, pool: np.ndarray, evals: int,
                 rng: np.random.Generator) -> np.ndarray:
    k = evals - len(first)
    draw = rng.choice(pool, k, replace=len(pool) < k) if len(pool) else np.zeros(k)
    return np.maximum.accumulate(np.concatenate([first, draw]))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    runs, initial, evals = args.runs, args.initial, args.evals
    rnd = curves_of(runs, "random")
    gp = curves_of(runs, "gp")
    if not rnd:
        print(f"--saved {args.saved}: no random-search runs to compare with", file=sys.stderr)
        return 2
    repeats = sorted(rnd)
    by_repeat = pools(runs, initial, args.lo, args.hi)
    first = {int(r["repeat"]): np.array([trial_accuracy(t) for t in r["trials"][:initial]])
             for r in runs if r["method"] == "random"}
    rnd_median = np.median([rnd[r] for r in repeats], axis=0)
    print(f"{args.saved}: {len(repeats)} repeats x {evals} evaluations, "
          f"{initial} initial; oracle band learning_rate in [{args.lo:g}, {args.hi:g})")
    for r in repeats:
        pool = by_repeat.get(r, np.empty(0))
        med = f"{np.median(pool):.4f}" if len(pool) else "-"
        print(f"  repeat {r}: {len(pool)} trainings in the band, median accuracy {med}, "
              f"share >= {rnd_median[-1]:.4f}: {np.mean(pool >= rnd_median[-1] - 1e-12):.1%}"
              if len(pool) else f"  repeat {r}: no training in the band")
    rng = np.random.default_rng(args.seed)
    tally = np.zeros(3)
    reaches: list[float] = []
    medians = []
    for _ in range(args.draws):
        curves = [oracle_curve(first[r], by_repeat.get(r, np.empty(0)), evals, rng)
                  for r in repeats]
        med = np.median(curves, axis=0)
        medians.append(med)
        every, within, reach = meets_targets(med, rnd_median)
        tally += (every, within, every and within)
        reaches.append(reach if reach is not None else np.inf)
    budgets = [b for b in BUDGETS if b <= evals]
    rows = {"oracle (median of draws)": np.median(medians, axis=0), "random": rnd_median}
    if gp:
        rows["gp"] = np.median([gp[r] for r in sorted(gp)], axis=0)
    print("median best-seen " + " ".join(f"@{b}" for b in budgets))
    for name, curve in rows.items():
        print(f"  {name:25s}" + " ".join(f"{curve[b - 1]:.4f}" for b in budgets))
    if gp:
        every, within, reach = meets_targets(rows["gp"], rnd_median)
        print(f"this run's gp: every budget {'met' if every else 'not met'}, reaches "
              f"random's final median ({rnd_median[-1]:.4f}) at {reach or 'never'}")
    share = tally / args.draws
    print(f"oracle, {args.draws} studies of {len(repeats)} repeats: 'every budget' "
          f"{share[0]:.0%}, 'within 20' {share[1]:.0%}, both {share[2]:.0%}; "
          f"median evaluation reaching random's final median {np.median(reaches):g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
