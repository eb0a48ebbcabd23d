"""kubetune's suggesters against the optimizers users would pick instead, side by side.

    .venv/bin/python benchmarks/optimizers.py            # full: 10 seeds x 80 evals
    .venv/bin/python benchmarks/optimizers.py --quick    # a few minutes

Methods: kubetune ``gp`` and ``random`` (rebuilt from the record on every ask, as the
operator runs them), scikit-optimize ``gp_minimize`` with its defaults (the same
``Optimizer`` gp_minimize builds; batches via ``ask(n_points)``, constant liar),
Optuna's TPE, and Optuna's GPSampler when PyTorch is installed. Batch b means: ask b
configurations, evaluate them all, tell them all. Functions: Branin (2-D), Hartmann6
(6-D) and ``cnn_mixed``, an 8-D mixed int/log/categorical CNN-like response surface
(``problems.cnn_surface``). All objectives are minimized and cheap, so evaluations
run in-process.

scikit-optimize's ``ask(n_points=4)`` refits the GP once per point, so its batch-4
runs cost as much as its batch-1 runs (30-90 s each here); ``--skopt-batches 1``
drops them. The full default run took 28 minutes on 2 lightly loaded cores.

BLAS is limited to one thread in every worker (``--blas-threads``), for all methods:
on this 2-core machine OpenBLAS threads fighting other processes made
scikit-optimize about 3x slower than single-threaded. Tasks run in ``--jobs``
processes (default: the number of cores), one thread each. Finished runs are
appended to ``<out>/optimizers-<tag>.jsonl`` and reused by ``--resume``.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from problems import METHODS, PROBLEMS, Trace, unavailable

BUDGETS = (10, 20, 40, 80)
DEFAULT_METHODS = ["kubetune-gp", "kubetune-random", "skopt-gp_minimize", "optuna-tpe",
                   "optuna-gp"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=10, help="seeds per method (default 10)")
    ap.add_argument("--evals", type=int, default=80, help="evaluations per run (default 80)")
    ap.add_argument("--batches", default="1,4", help="batch sizes (default 1,4)")
    ap.add_argument("--functions", default=",".join(PROBLEMS), help="comma-separated")
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="comma-separated")
    ap.add_argument("--skopt-batches", default="1,4",
                    help="batch sizes at which gp_minimize runs (default 1,4)")
    ap.add_argument("--quick", action="store_true",
                    help="3 seeds x 30 evals, no scikit-optimize (about a minute)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--blas-threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    ap.add_argument("--tag", default="", help="suffix of the output files")
    ap.add_argument("--resume", action="store_true", help="reuse runs already in the jsonl")
    ap.add_argument("--gp-set", action="append", default=[], metavar="NAME=VALUE",
                    help="override a kubetune.suggest.gp constant (ablations), repeatable")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.evals = 3, 30
        if args.methods == ",".join(DEFAULT_METHODS):
            args.methods = "kubetune-gp,kubetune-random,optuna-tpe"
    args.tag = args.tag or ("quick" if args.quick else "full")
    return args


# ------------------------------------------------------------------------- running
def _init_worker(blas_threads: int, gp_set: list[str]) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(blas_threads)
    apply_gp_set(gp_set)


def apply_gp_set(assignments: list[str]) -> None:
    """``NAME=VALUE`` -> kubetune.suggest.gp.NAME = literal VALUE (for ablations)."""
    import ast

    from kubetune.suggest import gp

    for item in assignments:
        name, _, value = item.partition("=")
        if not hasattr(gp, name):
            raise SystemExit(f"--gp-set: kubetune.suggest.gp has no {name}")
        try:
            setattr(gp, name, ast.literal_eval(value))
        except (ValueError, SyntaxError) as e:
            raise SystemExit(f"--gp-set {item}: VALUE must be a Python literal "
                             f"(quote strings: NAME='\"text\"'): {e}") from None


def _run(task: tuple[str, str, int, int, int]) -> dict[str, Any]:
    function, method, batch, seed, evals = task
    started = time.perf_counter()
    trace: Trace = METHODS[method](PROBLEMS[function], seed, evals, batch)
    return {"function": function, "method": method, "batch": batch, "seed": seed,
            "evals": evals, "values": trace.values, "ask_seconds": trace.ask_seconds,
            "wall_seconds": time.perf_counter() - started}


def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    functions = args.functions.split(",")
    methods = args.methods.split(",")
    batches = [int(b) for b in args.batches.split(",")]
    skopt_batches = {int(b) for b in args.skopt_batches.split(",")}
    for f in functions:
        if f not in PROBLEMS:
            raise SystemExit(f"unknown function {f!r} (have {', '.join(PROBLEMS)})")
    runnable = []
    for m in methods:
        if m not in METHODS:
            raise SystemExit(f"unknown method {m!r} (have {', '.join(METHODS)})")
        why = unavailable(m)
        if why:
            print(f"skipping {m}: {why}", flush=True)
        else:
            runnable.append(m)
    tasks = [(f, m, b, s, args.evals) for f in functions for b in batches for m in runnable
             if not (m.startswith("skopt") and b not in skopt_batches)
             for s in range(args.seeds)]
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / f"optimizers-{args.tag}.jsonl"
    done: dict[tuple[Any, ...], dict[str, Any]] = {}
    if args.resume and store.exists():
        for line in store.read_text().splitlines():
            r = json.loads(line)
            if r.get("gp_set", []) == args.gp_set:
                done[(r["function"], r["method"], r["batch"], r["seed"], r["evals"])] = r
    elif store.exists():
        store.unlink()
    todo = [t for t in tasks if t not in done]
    print(f"{len(tasks)} runs ({len(tasks) - len(todo)} reused), {args.jobs} job(s)", flush=True)
    # Slowest first, so the pool does not end waiting on one long run.
    todo.sort(key=lambda t: (not t[1].startswith("skopt"), t[1] != "kubetune-gp", t))
    started = time.perf_counter()
    results = [done[t] for t in tasks if t in done]
    with store.open("a") as fh:
        if args.jobs > 1:
            ctx = mp.get_context("spawn")
            with ctx.Pool(args.jobs, _init_worker, (args.blas_threads, args.gp_set)) as pool:
                for r in pool.imap_unordered(_run, todo):
                    _record(r, args, fh, results, len(tasks), started)
        else:
            _init_worker(args.blas_threads, args.gp_set)
            for t in todo:
                _record(_run(t), args, fh, results, len(tasks), started)
    return results


def _record(r: dict[str, Any], args: argparse.Namespace, fh: Any, results: list[dict[str, Any]],
            total: int, started: float) -> None:
    r["gp_set"] = args.gp_set
    fh.write(json.dumps(r) + "\n")
    fh.flush()
    results.append(r)
    print(f"[{len(results)}/{total} {time.perf_counter() - started:6.0f}s] {r['function']} "
          f"{r['method']} b{r['batch']} s{r['seed']}: best {min(r['values']):.4g} "
          f"({r['wall_seconds']:.1f}s)", flush=True)


# ------------------------------------------------------------------------ analysis
def best_seen(values: Sequence[float], evals: int) -> np.ndarray:
    out = np.minimum.accumulate(np.asarray(values, dtype=float))
    if len(out) < evals:  # a run that stopped early keeps its best
        out = np.concatenate([out, np.full(evals - len(out), out[-1] if len(out) else np.inf)])
    return out[:evals]


def group(results: list[dict[str, Any]]) -> dict[tuple[str, int, str], np.ndarray]:
    """(function, batch, method) -> seeds x evals best-seen matrix."""
    out: dict[tuple[str, int, str], list[np.ndarray]] = {}
    for r in sorted(results, key=lambda r: r["seed"]):
        out.setdefault((r["function"], r["batch"], r["method"]), []).append(
            best_seen(r["values"], r["evals"]))
    return {k: np.vstack(v) for k, v in out.items()}


def evals_to_reach(curves: np.ndarray, target: float) -> list[float]:
    """Per seed: first evaluation count at which best-seen <= target (inf if never)."""
    out = []
    for row in curves:
        hit = np.nonzero(row <= target + 1e-12)[0]
        out.append(float(hit[0] + 1) if len(hit) else math.inf)
    return out


def fmt(x: float) -> str:
    if not math.isfinite(x):
        return "-"
    return f"{x:.4g}" if abs(x) < 1e4 else f"{x:.3e}"


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """Markdown: best-seen medians, evaluations to random's final median, ask times."""
    curves = group(results)
    evals = args.evals
    budgets = [b for b in BUDGETS if b <= evals] or [evals]
    if budgets[-1] != evals:
        budgets.append(evals)
    lines: list[str] = []
    functions = list(dict.fromkeys(r["function"] for r in results))
    batches = sorted({r["batch"] for r in results})
    methods = [m for m in METHODS if any(r["method"] == m for r in results)]
    n_seeds = len({r["seed"] for r in results})
    lines.append(f"Median best-seen value over {n_seeds} seeds (lower is better); "
                 f"'to random' = median number of evaluations to reach random search's "
                 f"median at {evals} (reached: seeds that got there within {evals}).\n")
    for f in functions:
        p = PROBLEMS[f]
        opt = f", optimum {p.optimum:g}" if p.optimum is not None else ""
        for b in batches:
            rand = curves.get((f, b, "kubetune-random"))
            target = float(np.median(rand[:, -1])) if rand is not None else math.nan
            lines.append(f"**{f}** ({p.description}{opt}), batch {b}"
                         + (f", random's median at {evals}: {fmt(target)}" if rand is not None
                            else "") + "\n")
            head = "| method | " + " | ".join(f"@{k}" for k in budgets) + " | to random | reached |"
            lines += [head, "|" + "---|" * (len(budgets) + 3)]
            for m in methods:
                c = curves.get((f, b, m))
                if c is None:
                    continue
                meds = [fmt(float(np.median(c[:, k - 1]))) for k in budgets]
                if rand is not None:
                    hits = evals_to_reach(c, target)
                    med = float(np.median(hits))
                    reach = (fmt(med) if math.isfinite(med) else f">{evals}")
                    got = f"{sum(math.isfinite(h) for h in hits)}/{len(hits)}"
                else:
                    reach, got = "-", "-"
                lines.append(f"| {m} | " + " | ".join(meds) + f" | {reach} | {got} |")
            lines.append("")
    lines.append("Seconds per ask (one ask returns `batch` configurations; for scikit-optimize "
                 "the tell, where it refits, is counted too), over all functions and seeds:\n")
    lines += ["| method | batch | asks | p50 | p95 | max |", "|---|---|---|---|---|---|"]
    for m in methods:
        for b in batches:
            t = [s for r in results if r["method"] == m and r["batch"] == b
                 for s in r["ask_seconds"]]
            if t:
                lines.append(f"| {m} | {b} | {len(t)} | {np.percentile(t, 50):.3f} | "
                             f"{np.percentile(t, 95):.3f} | {max(t):.3f} |")
    lines.append("")
    lines += targets(curves, functions, batches, evals)
    return "\n".join(lines)


def targets(curves: dict[tuple[str, int, str], np.ndarray], functions: list[str],
            batches: list[int], evals: int) -> list[str]:
    """The issue's targets that this benchmark can check."""
    out = ["Targets:", ""]
    for f in ("branin", "hartmann6"):
        if f not in functions:
            continue
        for b in batches:
            gp, tpe = curves.get((f, b, "kubetune-gp")), curves.get((f, b, "optuna-tpe"))
            if gp is None or tpe is None:
                continue
            g, t = float(np.median(gp[:, -1])), float(np.median(tpe[:, -1]))
            out.append(f"- {f} batch {b}: gp median at {evals} {fmt(g)} vs TPE {fmt(t)}: "
                       f"{'MET' if g <= t else 'NOT MET'}")
    for f in functions:
        for b in batches:
            gp, rnd = curves.get((f, b, "kubetune-gp")), curves.get((f, b, "kubetune-random"))
            if gp is None or rnd is None:
                continue
            worse = [k for k in range(evals)
                     if np.median(gp[:, k]) > np.median(rnd[:, k]) + 1e-12]
            out.append(f"- {f} batch {b}: gp median <= random's at every budget: "
                       + ("yes" if not worse else f"no (worse at {len(worse)} budgets, "
                          f"first at {worse[0] + 1})"))
    return out


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Median best-seen traces with quartile bands, one panel per function and batch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = group(results)
    functions = list(dict.fromkeys(r["function"] for r in results))
    batches = sorted({r["batch"] for r in results})
    methods = [m for m in METHODS if any(r["method"] == m for r in results)]
    colors = {m: f"C{i}" for i, m in enumerate(METHODS)}  # one color per method everywhere
    fig, axes = plt.subplots(len(functions), len(batches), squeeze=False,
                             figsize=(5.5 * len(batches), 3.8 * len(functions)))
    for i, f in enumerate(functions):
        opt = PROBLEMS[f].optimum
        for j, b in enumerate(batches):
            ax = axes[i][j]
            for m in methods:
                c = curves.get((f, b, m))
                if c is None:
                    continue
                y = c - opt if opt is not None else c
                y = np.maximum(y, 1e-6)
                x = np.arange(1, y.shape[1] + 1)
                q1, med, q3 = np.percentile(y, [25, 50, 75], axis=0)
                ax.plot(x, med, label=m, color=colors[m])
                ax.fill_between(x, q1, q3, color=colors[m], alpha=0.15)
            ax.set_yscale("log")
            ax.set_title(f"{f}, batch {b}")
            ax.set_xlabel("evaluations")
            ax.set_ylabel("best-seen regret" if opt is not None else "best-seen value")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    apply_gp_set(args.gp_set)  # bad input fails here, not in every pool worker
    started = time.perf_counter()
    results = run_all(args)
    text = report(results, args)
    header = (f"# optimizers benchmark ({args.tag})\n\n`{' '.join(sys.argv)}`: "
              f"{args.seeds} seeds x {args.evals} evaluations, {args.jobs} job(s), "
              f"{os.cpu_count()} cores, {time.perf_counter() - started:.0f} s"
              + (f", gp overrides {args.gp_set}" if args.gp_set else "") + "\n\n")
    png = args.out / f"optimizers-{args.tag}.png"
    plot(results, png)
    (args.out / f"optimizers-{args.tag}.md").write_text(header + text + f"\n\n![traces]({png.name})\n")
    print(header + text)
    print(f"\nwrote {png} and {args.out / f'optimizers-{args.tag}.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
