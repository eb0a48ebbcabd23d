"""``kubetune report``: what the experiment bought with its money.

Reads a TuningExperiment document (a ``kubetune run`` status file, or the live
resource through the current kubeconfig) and prints the best-seen trace with
the dollars spent along it, the dollars needed to first reach each best-so-far
value (and any ``--levels``), and the spend.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from kubetune.analysis import TracePoint, best_seen_trace, cost_to_reach
from kubetune.api.errors import InvalidSpec
from kubetune.api.manifest import Experiment, load_experiment
from kubetune.api.spec import GROUP, PLURAL, VERSION, Goal
from kubetune.api.status import ExperimentStatus
from kubetune.ui import dollars_table


class SourceError(RuntimeError):
    """The report's source could not be read."""


def _looks_like_path(source: str) -> bool:
    return "/" in source or source.endswith((".yaml", ".yml", ".json"))


def read_file(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise SourceError(f"cannot read {path}: {error}") from None
    if not isinstance(doc, dict):
        raise SourceError(f"{path} does not hold a TuningExperiment document")
    return doc


def read_cluster(name: str, namespace: str) -> dict[str, Any]:
    """The TuningExperiment ``namespace/name`` via the current kubeconfig (or in-cluster config)."""
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException
    from kubernetes.config.config_exception import ConfigException

    try:
        config.load_kube_config()
    except (ConfigException, OSError):
        try:
            config.load_incluster_config()
        except ConfigException:
            raise SourceError(
                f"{name!r} is not a file, and there is no kubeconfig to look it up in a cluster"
            ) from None
    api_client = client.ApiClient()
    try:
        return client.CustomObjectsApi(api_client).get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as error:
        if error.status == 404:
            raise SourceError(f"no TuningExperiment {namespace}/{name} in the cluster "
                              f"(and no file named {name!r})") from None
        raise SourceError(f"cannot read TuningExperiment {namespace}/{name}: "
                          f"{error.status} {error.reason}") from None
    except OSError as error:  # urllib3 connection errors
        raise SourceError(f"cannot reach the cluster: {error}") from None
    finally:
        api_client.close()


def load_source(source: str, namespace: str) -> Experiment:
    """A status file when ``source`` names an existing file, else a TuningExperiment's name."""
    path = Path(source)
    if path.is_file():
        doc = read_file(path)
    elif _looks_like_path(source):
        raise SourceError(f"no such file: {source}")
    else:
        doc = read_cluster(source, namespace)
    try:
        return load_experiment(doc)
    except InvalidSpec as error:
        problems = "; ".join(f"{p.field}: {p.reason}" for p in error.problems)
        raise SourceError(f"{source} is not a valid TuningExperiment: {problems}") from None


# ---------------------------------------------------------------------- rendering
def trace_table(points: Sequence[TracePoint], metric: str) -> Table:
    """One row per completed trial, in order of completion; improvements starred."""
    table = Table(title="best-seen trace", header_style="bold")
    for name in ("#", "trial", metric, f"best {metric}", "spent so far"):
        table.add_column(name, justify="right")
    for p in points:
        value = "[red]failed[/]" if p.value is None else f"{p.value:.4f}"
        best = "" if p.best is None else f"{p.best:.4f}"
        if p.improved:
            value, best = f"[bold green]★ {value}[/]", f"[bold green]{best}[/]"
        table.add_row(str(p.number), str(p.trial), value, best, f"${p.cost:.4f}")
    return table


def improvement_rows(points: Sequence[TracePoint]) -> list[tuple[str, str, str, str]]:
    """Dollars at which each best-so-far value was first reached."""
    return [(f"{p.best:.4f}", str(p.trial), str(p.number), f"${p.cost:.4f}")
            for p in points if p.improved and p.best is not None]


def level_rows(points: Sequence[TracePoint], levels: Sequence[float],
               maximize: bool) -> list[tuple[str, str, str, str]]:
    rows = []
    sign = ">=" if maximize else "<="
    for level in levels:
        hit = cost_to_reach(points, level, maximize)
        if hit is None:
            rows.append((f"{sign} {level:g}", "not reached", "", ""))
        else:
            rows.append((f"{sign} {level:g}", str(hit.trial), str(hit.number), f"${hit.cost:.4f}"))
    return rows


def spend_table(experiment: Experiment) -> Table:
    status: ExperimentStatus = experiment.status
    spec = experiment.spec
    costs = [t.cost for t in status.trials if t.cost is not None]
    table = Table(title="spend", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    table.add_row("total", f"${status.total_cost:.4f}")
    table.add_row("per trial (median)",
                  f"${statistics.median(costs):.4f}" if costs else "-")
    table.add_row("trials charged", str(len(costs)))
    table.add_row("GPU-hours", f"{status.gpu_seconds / 3600:.4f}")
    table.add_row("price per trial-hour",
                  "-" if status.price_per_hour is None else f"${status.price_per_hour:.4f}")
    if spec.budget.max_cost is None:
        table.add_row("budget", "none (no budget.maxCost)")
    else:
        remaining = status.remaining_budget
        if remaining is None:
            remaining = spec.budget.max_cost - status.total_cost
        table.add_row("budget", f"${spec.budget.max_cost:.4f}")
        table.add_row("remaining", f"${remaining:.4f}")
    return table


def report(args: argparse.Namespace, console: Console) -> int:
    """Print the report for ``args.source``; exit status 2 when it cannot be read."""
    try:
        experiment = load_source(args.source, args.namespace)
    except SourceError as error:
        Console(stderr=True).print(f"[red]error:[/] {error}")
        return 2
    spec, status = experiment.spec, experiment.status
    metric = spec.objective.metric
    maximize = spec.objective.goal == Goal.maximize
    finished = status.condition("Succeeded") or status.condition("Failed")
    reason = f" ({finished.reason}: {finished.message})" if finished and finished.status == "True" \
        else ""
    console.print(f"[bold]{experiment.namespace}/{experiment.name}[/]: {status.phase or 'Created'}"
                  f"{reason}; {status.progress or '0'} trials, {spec.objective.goal} {metric}")
    points = best_seen_trace(spec, status.trials)
    if not points:
        console.print("no trial has completed yet")
    else:
        console.print(trace_table(points, metric))
        console.print("[bold]dollars to first reach each best-so-far value[/]")
        console.print(dollars_table(improvement_rows(points), metric))
        if args.levels:
            console.print("[bold]dollars to reach the given levels[/]")
            console.print(dollars_table(level_rows(points, args.levels, maximize), metric))
    console.print(spend_table(experiment))
    if args.png is not None:
        if points:
            from kubetune.plots import best_seen_png  # matplotlib: imported only when asked

            png = best_seen_png(points, args.png, metric=metric,
                                title=f"{experiment.name}: best-seen {metric}")
            console.print(f"best-seen trace: {png}")
        else:
            console.print("no PNG: no trial has completed yet")
    return 0
