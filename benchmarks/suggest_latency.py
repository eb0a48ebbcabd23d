"""Seconds for one batch of suggestions, kubetune ``gp`` beside scikit-optimize's default.

    .venv/bin/python benchmarks/suggest_latency.py                 # 50/150/300 observations
    .venv/bin/python benchmarks/suggest_latency.py --ablations     # + what each change buys

The history is ``cnn_mixed`` (8-D: log doubles, doubles, ints, two categoricals, 14
GP inputs) evaluated at seeded random configurations. kubetune: a fresh
``GPSearch(...).suggest(history, pending, 4)``, as the operator calls it (it keeps no
state between calls). Baseline: scikit-optimize's ``Optimizer`` exactly as
``gp_minimize`` builds it (GP, gp_hedge, L-BFGS acquisition search), then
``tell(history)`` and ``ask(n_points=4)`` (constant liar): a stateless service such as
Katib's pays both on every request. Both run in the same process, interleaved
repeat by repeat, so a busy machine slows both alike. The baseline keeps its default
BLAS threading (what its users get) unless ``--baseline-blas-threads`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from problems import PROBLEMS, skopt_optimizer

from kubetune.api.spec import Algorithm, Goal
from kubetune.space import Config, SearchSpace
from kubetune.suggest import Observation, gp

ROOT = Path(__file__).resolve().parents[1]
PROBLEM = PROBLEMS["cnn_mixed"]

# name -> gp.py constants to override: each undoes one of the measured changes.
ABLATIONS: dict[str, dict[str, Any]] = {
    "hyperparameters fitted on all observations": {"FIT_SUBSET": 10**9},
    "scikit-learn's 2 random restarts": {"RESTARTS": 2},
    "default BLAS threading": {"threadpool_limits": lambda **_: contextlib.nullcontext()},
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="50,150,300", help="observations (default 50,150,300)")
    ap.add_argument("--repeats", type=int, default=7, help="kubetune calls per size")
    ap.add_argument("--baseline-repeats", default="3,2,1",
                    help="scikit-optimize calls per size (default 3,2,1: ~1 min each at 300)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--pending", type=int, default=4,
                    help="pending trials in the pending-aware column (default 4)")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--baseline-blas-threads", type=int, default=None)
    ap.add_argument("--ablations", action="store_true",
                    help="also time gp.py with each change undone (3 calls per size)")
    ap.add_argument("--original", metavar="REV", default=None,
                    help="also time gp.py as of this git revision (once per size)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    return ap.parse_args(argv)


def history(n: int, seed: int) -> list[Observation]:
    space = SearchSpace(PROBLEM.parameters)
    configs = space.sample(n, np.random.default_rng(seed))
    return [Observation(c, PROBLEM.objective(c)) for c in configs]


def time_kubetune(suggester_cls: Any, hist: list[Observation], pending: list[Config],
                  batch: int, seed: int) -> tuple[float, list[Config]]:
    space = SearchSpace(PROBLEM.parameters)
    suggester = suggester_cls(space, Algorithm(seed=seed), Goal.minimize)
    issued = [o.config for o in hist] + pending
    started = time.perf_counter()
    out = suggester.suggest(hist, pending, batch, issued)
    return time.perf_counter() - started, out


def time_baseline(hist: list[Observation], batch: int, seed: int,
                  blas_threads: int | None) -> float:
    limit: Any = contextlib.nullcontext()
    if blas_threads:
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(blas_threads)
    with limit, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimizer, space = skopt_optimizer(PROBLEM, seed)
        points = [space.to_point(o.config) for o in hist]
        started = time.perf_counter()
        optimizer.tell(points, [float(o.value) for o in hist])  # type: ignore[arg-type]
        optimizer.ask(n_points=batch)
        return time.perf_counter() - started


@contextlib.contextmanager
def patched(overrides: dict[str, Any]) -> Iterator[None]:
    saved = {k: getattr(gp, k) for k in overrides}
    for k, v in overrides.items():
        setattr(gp, k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(gp, k, v)


def load_original(rev: str) -> Any:
    """GPSearch from gp.py at a git revision, imported under a private module name."""
    source = subprocess.run(["git", "show", f"{rev}:operator/kubetune/suggest/gp.py"],
                            cwd=ROOT, check=True, capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader("kubetune.suggest._gp_at_rev", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, f"gp.py@{rev}", "exec"), module.__dict__)
    return module.GPSearch


def stats(xs: list[float]) -> tuple[float, float]:
    return float(np.median(xs)), float(np.percentile(xs, 95))


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} cores, {cpu}, load average {load:.1f} at start"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    base_reps = [int(s) for s in args.baseline_repeats.split(",")]
    base_reps += [base_reps[-1]] * (len(sizes) - len(base_reps))
    original = load_original(args.original) if args.original else None
    rows: list[dict[str, Any]] = []
    where = machine()
    print(f"# suggest latency: {args.batch} suggestions, cnn_mixed history; {where}", flush=True)
    for size, n_base in zip(sizes, base_reps, strict=True):
        row: dict[str, Any] = {"observations": size, "kubetune": [], "kubetune_pending": [],
                               "baseline": [], "ablations": {}, "original": []}
        for r in range(max(args.repeats, n_base)):
            hist = history(size, seed=r)
            if r < args.repeats:
                t, out = time_kubetune(gp.GPSearch, hist, [], args.batch, seed=r)
                assert len(out) == args.batch
                row["kubetune"].append(t)
                pending = SearchSpace(PROBLEM.parameters).sample(
                    args.pending, np.random.default_rng(10_000 + r))
                t, _ = time_kubetune(gp.GPSearch, hist, pending, args.batch, seed=r)
                row["kubetune_pending"].append(t)
            if r < n_base and not args.no_baseline:
                row["baseline"].append(time_baseline(hist, args.batch, r,
                                                     args.baseline_blas_threads))
            if args.ablations and r < 3:
                for name, overrides in ABLATIONS.items():
                    with patched(overrides):
                        t, _ = time_kubetune(gp.GPSearch, hist, [], args.batch, seed=r)
                    row["ablations"].setdefault(name, []).append(t)
            if original is not None and r == 0:
                t, _ = time_kubetune(original, hist, [], args.batch, seed=r)
                row["original"].append(t)
        rows.append(row)
        k = stats(row["kubetune"])
        b = stats(row["baseline"]) if row["baseline"] else None
        print(f"  {size} observations: kubetune {k[0]:.3f}s"
              + (f", scikit-optimize {b[0]:.1f}s" if b else ""), flush=True)
    text = table(rows, args)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "suggest_latency.json").write_text(json.dumps(rows, indent=1))
    (args.out / "suggest_latency.md").write_text(
        f"# suggest latency\n\n`{' '.join(sys.argv)}` on {where}\n\n{text}\n")
    return 0


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    threads = (f"BLAS {args.baseline_blas_threads} thread(s)" if args.baseline_blas_threads
               else "default BLAS threads")
    lines = [
        f"Seconds for {args.batch} suggestions (median / p95 over calls; n = calls):\n",
        f"| observations | kubetune gp | kubetune gp, {args.pending} pending | "
        f"scikit-optimize tell+ask(n_points={args.batch}), {threads} | speedup (median) |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        k, kp = stats(row["kubetune"]), stats(row["kubetune_pending"])
        cells = [f"{row['observations']}", f"{k[0]:.3f} / {k[1]:.3f} (n={len(row['kubetune'])})",
                 f"{kp[0]:.3f} / {kp[1]:.3f}"]
        if row["baseline"]:
            b = stats(row["baseline"])
            cells += [f"{b[0]:.2f} / {b[1]:.2f} (n={len(row['baseline'])})", f"{b[0] / k[0]:.0f}x"]
        else:
            cells += ["-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    if any(row["ablations"] for row in rows):
        names = list(rows[0]["ablations"])
        lines += ["", "Each change undone in turn (median seconds, 3 calls, same histories):\n",
                  "| observations | as shipped | " + " | ".join(names) + " |",
                  "|---|---|" + "---|" * len(names)]
        for row in rows:
            lines.append(f"| {row['observations']} | {np.median(row['kubetune'][:3]):.3f} | "
                         + " | ".join(f"{np.median(row['ablations'][n]):.3f}" for n in names)
                         + " |")
    if any(row["original"] for row in rows):
        lines += ["", f"gp.py as of {args.original} (one call): "
                  + ", ".join(f"{row['observations']} obs {row['original'][0]:.1f}s"
                              for row in rows)]
    return "\n".join(lines)



if __name__ == "__main__":
    sys.exit(main())
