"""Proof on a real Prometheus: every dashboard query returns what the status says.

``kubetune run --metrics-port`` runs a small experiment (fake trainer, one
failing trial) while Debian's prometheus scrapes it every second. Once the
final state is scraped, every query of every panel of
``helm/kubetune/dashboards/kubetune.json`` is evaluated through the HTTP API
with the template variables substituted, and compared with the numbers in
the run's status file, recomputed independently from the trials.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune.metrics import SUGGESTION_BUCKETS, TRIAL_DURATION_BUCKETS
from tests.support.dashboard import (
    PanelQuery,
    label_values_call,
    load_dashboard,
    panel_queries,
    variable_queries,
)
from tests.support.experiments import fake_trainer_container
from tests.support.prometheus import (
    PrometheusServer,
    free_port,
    histogram_quantile,
    http_get,
    promtool_check_metrics,
)

pytestmark = [pytest.mark.prometheus, pytest.mark.e2e]

NAMESPACE = "ml-team"
NAME = "fake-digits"
PRICE = 3600.0  # dollars per trial-hour: one dollar per running second, easy to read
MAX_COST = 1000.0
TARGET = 2.0  # unreachable (values are < 1): the run ends at maxTrials, target still exported
PARALLELISM = 2
MAX_TRIALS = 6
FAILING_TRIAL = 2
BEST_TRIAL = 1  # reached early: the dollars to reach the best are well below the total


def manifest() -> dict[str, Any]:
    return {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "TuningExperiment",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": {
            "objective": {"metric": "val_accuracy", "goal": "maximize", "target": TARGET},
            "algorithm": {"name": "gp", "seed": 3, "initialPoints": 3,
                          "gp": {"candidates": 300}},
            "budget": {"maxTrials": MAX_TRIALS, "parallelism": PARALLELISM,
                       "maxFailedTrials": 2, "maxCost": MAX_COST},
            "cost": {"pricePerHour": PRICE},
            "parameters": [
                {"name": "learning_rate", "type": "double", "min": 1e-4, "max": 1.0,
                 "scale": "log"},
                {"name": "momentum", "type": "double", "min": 0.5, "max": 1.0},
                {"name": "conv1_depth", "type": "int", "min": 10, "max": 64},
            ],
            "trialTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [fake_trainer_container(
                    "--sleep=1.5", f"--fail_trials={FAILING_TRIAL}", f"--best_trial={BEST_TRIAL}",
                    gpus=1)],
            }}}},
        },
    }


@contextmanager
def kubetune_run(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``kubetune run`` in the background; interrupted (then killed) when the block ends."""
    env = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "kubetune.cli", "run", *args],
                                   stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # ends the lingering (or stops the trials)
            try:
                process.wait(120)  # interpreter exit is slow on a loaded machine
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def value(series: dict[str, Any]) -> float:
    return float(series["value"][1])


def only(result: list[dict[str, Any]], where: str) -> float:
    assert len(result) == 1, f"{where}: expected one series, got {result}"
    return value(result[0])


def seconds(trial: dict[str, Any]) -> float:
    """A trial's running time from its recorded start and finish, not from the accounting."""
    start = datetime.fromisoformat(trial["startTime"])
    finish = datetime.fromisoformat(trial["finishTime"])
    return (finish - start).total_seconds()


def expectations(status: dict[str, Any]) -> dict[tuple[str, str], Callable[[list[dict]], None]]:
    """What each (panel title, refId) must return, recomputed from the status' trials."""
    trials = status["trials"]
    completed = [t for t in trials if t["state"] in ("Succeeded", "Failed")]
    succeeded = [t for t in completed if t["state"] == "Succeeded"]
    spent = sum(seconds(t) * PRICE / 3600 for t in trials)
    best = max(t["value"] for t in succeeded)
    # Dollars spent by completed trials, in order of completion, up to the first best one.
    best_cost = 0.0
    for trial in sorted(completed, key=lambda t: (t["finishTime"], t["index"])):
        best_cost += trial["cost"]
        if trial["state"] == "Succeeded" and trial["value"] == best:
            break
    # Trial 1 completes second or third of six: well before the end, a telling check.
    assert best_cost < 0.75 * status["totalCost"], (best_cost, status["totalCost"])
    durations = [t["durationSeconds"] for t in completed]

    def close(got: float, want: float, what: str, tol: float = 1e-6) -> None:
        assert math.isclose(got, want, rel_tol=tol, abs_tol=tol), f"{what}: {got} != {want}"

    def total_cost(result: list[dict]) -> None:
        got = only(result, "total cost")
        close(got, status["totalCost"], "totalCost")
        close(got, spent, "running time x price", tol=2e-3)  # durations are rounded to ms

    def per_experiment(want: float, what: str, tol: float = 1e-6) -> Callable[[list[dict]], None]:
        def check(result: list[dict]) -> None:
            assert len(result) == 1, f"{what}: {result}"
            assert result[0]["metric"].get("namespace") == NAMESPACE, result
            assert result[0]["metric"].get("experiment") == NAME, result
            close(value(result[0]), want, what, tol)
        return check

    def scalar(want: float, what: str, tol: float = 1e-6) -> Callable[[list[dict]], None]:
        return lambda result: close(only(result, what), want, what, tol)

    def by_state(result: list[dict]) -> None:
        got = {s["metric"]["state"]: value(s) for s in result}
        want = {k: float(v) for k, v in status["counts"].items() if k != "total"}
        assert got == want, f"trials by state: {got} != {want}"
        assert got["succeeded"] == len(succeeded) and got["failed"] == 1

    def quantile(q: float, buckets: tuple[float, ...], observations: list[float] | None
                 ) -> Callable[[list[dict]], None]:
        def check(result: list[dict]) -> None:
            got = only(result, f"p{q * 100:g}")
            if observations is None:  # suggestion latency: not in the status; only sane
                assert 0 < got <= buckets[-1], got
            else:
                close(got, histogram_quantile(q, buckets, observations), f"p{q * 100:g}")
        return check

    remaining = status["remainingBudget"]
    return {
        ("Dollars spent (total)", "A"): total_cost,
        ("Dollars to reach the current best", "A"): per_experiment(best_cost, "best cost"),
        ("Budget remaining", "A"): per_experiment(remaining, "remaining budget"),
        ("GPU-hours", "A"): scalar(status["gpuSeconds"] / 3600, "GPU-hours"),
        ("Dollars spent per experiment and in total", "A"):
            per_experiment(status["totalCost"], "cost per experiment"),
        ("Dollars spent per experiment and in total", "B"): total_cost,
        ("Budget and remaining budget", "A"): per_experiment(MAX_COST, "budget"),
        ("Budget and remaining budget", "B"): per_experiment(MAX_COST - spent, "remaining",
                                                             tol=2e-3),
        ("Best objective value over time", "A"): per_experiment(best, "best value"),
        ("Best objective value over time", "B"): per_experiment(TARGET, "target"),
        ("Trials by state", "A"): by_state,
        ("Running trials and GPUs in use", "A"): scalar(0, "running trials at the end"),
        ("Running trials and GPUs in use", "B"): scalar(0, "GPUs in use at the end"),
        ("Trial duration p50 / p95", "A"): quantile(0.5, TRIAL_DURATION_BUCKETS, durations),
        ("Trial duration p50 / p95", "B"): quantile(0.95, TRIAL_DURATION_BUCKETS, durations),
        ("Suggestion latency p50 / p95", "A"): quantile(0.5, SUGGESTION_BUCKETS, None),
        ("Suggestion latency p50 / p95", "B"): quantile(0.95, SUGGESTION_BUCKETS, None),
        ("Reconcile errors (per hour)", "A"): per_experiment(0, "reconcile errors"),
    }


def test_dashboard_queries_match_status(
    tmp_path: Path, prometheus_server: Callable[..., PrometheusServer], promtool: str
) -> None:
    began = time.monotonic()
    manifest_path = tmp_path / "experiment.yaml"
    manifest_path.write_text(yaml.safe_dump(manifest()))
    workdir = tmp_path / "run"
    port = free_port()
    prometheus = prometheus_server([f"127.0.0.1:{port}"])
    run_started = time.time()
    log = tmp_path / "run.log"
    with kubetune_run([str(manifest_path), "--workdir", str(workdir), "--metrics-port",
                       str(port), "--metrics-linger", "300", "--poll", "0.1"], log) as run:

        def alive() -> None:
            if run.poll() is not None:
                pytest.fail(f"kubetune run exited early ({run.returncode}):\n{log.read_text()}")

        selector = f'namespace="{NAMESPACE}", experiment="{NAME}"'
        prometheus.wait_for(f'kubetune_experiment_info{{{selector}, phase="Succeeded"}}',
                            lambda r: len(r) == 1, timeout=180, alive=alive)
        # The run is over and lingering (only then may the SIGINT at the end come).
        deadline = time.monotonic() + 60
        while "serving metrics on port" not in log.read_text():
            alive()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        status = yaml.safe_load((workdir / "status.yaml").read_text())["status"]
        assert status["phase"] == "Succeeded", status["conditions"]
        assert status["counts"]["succeeded"] == MAX_TRIALS - 1
        assert status["counts"]["failed"] == 1
        assert {t["index"] for t in status["trials"] if t["state"] == "Failed"} == {FAILING_TRIAL}
        assert status["best"]["trial"] == BEST_TRIAL

        # The exposition itself passes promtool's linter.
        exposition = http_get(f"http://127.0.0.1:{port}/metrics")
        lint = promtool_check_metrics(promtool, exposition)
        assert lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(), (
            lint.stdout + lint.stderr)

        dashboard = load_dashboard()
        # The template variables' queries find this experiment.
        for name, definition in variable_queries(dashboard).items():
            label, match = label_values_call(definition.replace("$namespace", NAMESPACE))
            assert prometheus.label_values(label, match) == [
                {"namespace": NAMESPACE, "experiment": NAME}[name]]

        gpu_seconds = sum(seconds(t) * t["gpus"] for t in status["trials"])
        assert math.isclose(status["gpuSeconds"], gpu_seconds, abs_tol=2e-3)
        assert all(t["gpus"] == 1 for t in status["trials"])
        expected = expectations(status)
        for chosen in ({"namespace": NAMESPACE, "experiment": NAME},
                       {"namespace": ".*", "experiment": ".*"}):  # a picked value and "All"
            queries: list[PanelQuery] = panel_queries(
                dashboard, {**chosen, "datasource": "prometheus"})
            assert {(q.panel, q.ref) for q in queries} == set(expected), \
                "every panel query needs an expectation here (and vice versa)"
            for q in queries:
                result = prometheus.query(q.expr)
                assert result, f"{q.panel} [{q.ref}] returned no series: {q.expr}"
                for series in result:
                    assert math.isfinite(value(series)), f"{q.panel} [{q.ref}]: {series}"
                expected[(q.panel, q.ref)](result)

        # Over the run, the running-trials panel saw the parallelism, with one GPU each.
        peaks = {}
        for q in panel_queries(dashboard, {"namespace": NAMESPACE, "experiment": NAME,
                                           "datasource": "prometheus"}):
            if q.panel == "Running trials and GPUs in use":
                series = prometheus.query_range(q.expr, run_started, time.time(), 0.5)
                peaks[q.ref] = max(float(v) for s in series for _, v in s["values"])
        assert peaks == {"A": PARALLELISM, "B": PARALLELISM}, peaks
    assert run.returncode == 0, log.read_text()
    print(f"prometheus dashboard test: {time.monotonic() - began:.1f}s")
