"""Terminal rendering (rich) shared by ``kubetune run`` and ``kubetune report``."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from kubetune.api.spec import ExperimentSpec
from kubetune.api.status import ExperimentStatus, Trial, TrialState
from kubetune.trials import format_value

STATE_STYLE = {
    TrialState.succeeded: "green",
    TrialState.failed: "red",
    TrialState.killed: "yellow",
    TrialState.running: "cyan",
    TrialState.pending: "dim",
}


def format_params(trial: Trial) -> str:
    parts = []
    for name, value in trial.parameters.items():
        parts.append(f"{name}={value:.4g}" if isinstance(value, float) else
                     f"{name}={format_value(value)}")
    return " ".join(parts)


def trials_table(spec: ExperimentSpec, status: ExperimentStatus, title: str = "") -> Table:
    """Every trial: parameters, value, duration, cost; the best one marked with a star."""
    table = Table(title=title or None, show_lines=False, header_style="bold")
    table.add_column("trial", justify="right")
    table.add_column("state")
    table.add_column(spec.objective.metric, justify="right")
    table.add_column("duration", justify="right")
    table.add_column("cost", justify="right")
    table.add_column("parameters", overflow="fold")
    best = status.best.trial if status.best else None
    for trial in status.trials:
        state = TrialState(trial.state)
        value = "" if trial.value is None else f"{trial.value:.4f}"
        if trial.index == best:
            value = f"[bold green]★ {value}[/]"
        elif state == TrialState.failed:
            value = f"[red]{trial.reason or 'failed'}[/]"
        table.add_row(
            str(trial.index),
            f"[{STATE_STYLE[state]}]{state.value}[/]",
            value,
            "" if trial.duration_seconds is None else f"{trial.duration_seconds:.1f}s",
            "" if trial.cost is None else f"${trial.cost:.4f}",
            format_params(trial),
        )
    return table


def summary_line(spec: ExperimentSpec, status: ExperimentStatus) -> str:
    best = f"{status.best.value:.4f} (trial {status.best.trial})" if status.best else "-"
    budget = f" of ${spec.budget.max_cost:.2f}" if spec.budget.max_cost is not None else ""
    return (
        f"{status.progress} trials, {status.counts.running} running, "
        f"{status.counts.failed} failed | best {spec.objective.metric} {best} | "
        f"spent ${status.total_cost:.4f}{budget}"
    )


def dollars_table(rows: Sequence[tuple[str, str, str, str]], metric: str) -> Table:
    table = Table(header_style="bold")
    for name, justify in ((f"best {metric} reached", "right"), ("at trial", "right"),
                          ("trials completed", "right"), ("dollars spent", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*row)
    return table
