"""The terminal side of ``kubetune run``: live progress, final table, PNG."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from kubetune.analysis import best_seen_trace
from kubetune.api.manifest import Experiment
from kubetune.api.status import ExperimentStatus, Trial, TrialState
from kubetune.local.runner import LocalRunner, ResumeError
from kubetune.plots import best_seen_png
from kubetune.ui import format_params, summary_line, trials_table

TRACE_FILE = "best-trace.png"


def _event_text(kind: str, trial: Trial | None, status: ExperimentStatus, metric: str) -> str:
    if kind == "started" and trial is not None:
        return f"[cyan]trial {trial.index} started[/] {format_params(trial)}"
    if kind == "finished" and trial is not None:
        state = TrialState(trial.state)
        if state == TrialState.succeeded:
            star = " [bold green]new best[/]" if status.best and status.best.trial == trial.index \
                else ""
            return f"[green]trial {trial.index} succeeded[/] {metric}={trial.value:.4f}{star}"
        return f"[red]trial {trial.index} {state.value.lower()}[/] {trial.reason}: {trial.message}"
    finished = status.condition("Succeeded") or status.condition("Failed")
    reason = f"{finished.reason}: {finished.message}" if finished else ""
    return f"[bold]experiment {status.phase}[/] {reason}"


def run_local(experiment: Experiment, args: argparse.Namespace, console: Console) -> int:
    workdir: Path = args.workdir or Path("runs") / experiment.name
    if args.fresh and workdir.exists():
        shutil.rmtree(workdir)
    metric = experiment.spec.objective.metric
    spinner = Spinner("dots", text="starting")
    exporter = None
    if args.metrics_port is not None:
        from kubetune.metrics import LocalExporter

        exporter = LocalExporter(experiment, args.metrics_port)

    def on_event(kind: str, trial: Trial | None, status: ExperimentStatus) -> None:
        console.print(_event_text(kind, trial, status, metric))

    def on_status(status: ExperimentStatus) -> None:
        spinner.update(text=Text.from_markup(summary_line(experiment.spec, status)))
        if exporter is not None:
            exporter.update(status)

    runner = LocalRunner(experiment, workdir, poll_seconds=args.poll, on_event=on_event,
                         on_status=on_status,
                         on_suggestion=exporter.suggestion_seconds if exporter else None)
    try:
        kept = runner.resume()
    except ResumeError as error:
        console.print(f"[red]error:[/] {error}")
        return 2
    if kept:
        console.print(f"resuming {experiment.name}: {kept} completed trials kept from "
                      f"{runner.status_path}")
    console.print(f"[bold]{experiment.name}[/]: {experiment.spec.algorithm.name}, "
                  f"{experiment.spec.budget.max_trials} trials, parallelism "
                  f"{experiment.spec.budget.parallelism}; results in {workdir}/")
    try:
        try:
            with Live(spinner, console=console, transient=True, refresh_per_second=4,
                      redirect_stdout=False, redirect_stderr=False):
                status = runner.run()
        except KeyboardInterrupt:
            console.print(f"[yellow]interrupted[/]: running trials stopped; status saved to "
                          f"{runner.status_path}. Run the same command again to resume.")
            return 130
        console.print(trials_table(experiment.spec, status, title=f"{experiment.name}"))
        console.print(summary_line(experiment.spec, status))
        points = best_seen_trace(experiment.spec, status.trials)
        if points:
            png = best_seen_png(points, workdir / TRACE_FILE, metric=metric,
                                title=f"{experiment.name}: best-seen {metric}")
            console.print(f"best-seen trace: {png}")
        console.print(f"status: {runner.status_path}")
        linger = getattr(args, "metrics_linger", 0.0) or 0.0
        if exporter is not None and linger > 0:
            console.print(f"serving metrics on port {exporter.port} for {linger:g}s more")
            with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C only ends the lingering
                time.sleep(linger)
        return 0 if status.phase == "Succeeded" else 1
    finally:
        if exporter is not None:
            exporter.close()
