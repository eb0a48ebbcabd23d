"""The exporter: status-derived gauges, once-per-trial histograms, serving and forgetting."""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from kubetune.api.manifest import Experiment, load_experiment
from kubetune.api.status import ExperimentStatus, Trial, TrialState
from kubetune.engine import summarize
from kubetune.metrics import TRIAL_DURATION_BUCKETS, LocalExporter, Metrics
from tests.support.experiments import T0, document, small_experiment, trial

PRICE = 2.6


def experiment(max_cost: float | None = 10.0, target: float | None = 0.99) -> Experiment:
    return small_experiment(max_cost, target, PRICE)


def trials() -> list[Trial]:
    """Completion order: 1 (0.8, t=600), 0 (0.9, t=900, the best), 2 (failed, t=1000)."""
    return [
        trial(0, TrialState.succeeded, 0, 900, 0.9),
        trial(1, TrialState.succeeded, 0, 600, 0.8),
        trial(2, TrialState.failed, 600, 1000, reason="Error"),
        trial(3, TrialState.running, 900, None),
        trial(4, TrialState.pending, None, None),
        trial(5, TrialState.killed, 1000, 1100, reason="Interrupted"),
    ]


def status_at(exp: Experiment, now_s: float = 1200, items: list[Trial] | None = None
              ) -> ExperimentStatus:
    return summarize(exp.spec, items if items is not None else trials(),
                     T0 + timedelta(seconds=now_s))


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the registry but the ``_created`` timestamps, keyed by (name, labels)."""
    from prometheus_client import generate_latest

    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
        if not s.name.endswith("_created")
    }


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    want = frozenset({"namespace": "team-a", "experiment": "exp", **labels}.items())
    return samples(metrics).get((name, want))


def test_gauges_are_what_the_status_says() -> None:
    exp = experiment()
    status = status_at(exp)
    metrics = Metrics(process_metrics=False)
    metrics.update("team-a", "exp", exp.spec, status)

    # Charged seconds: 900 + 600 + 400 + 300 (running, to now) + 100 (killed) = 2300.
    assert status.total_cost == pytest.approx(2300 / 3600 * PRICE, abs=1e-6)
    assert sample(metrics, "kubetune_experiment_cost_dollars") == status.total_cost
    assert sample(metrics, "kubetune_experiment_gpu_seconds") == pytest.approx(2300 * 2)
    assert sample(metrics, "kubetune_experiment_budget_dollars") == 10.0
    assert sample(metrics, "kubetune_experiment_budget_remaining_dollars") == pytest.approx(
        10.0 - status.total_cost)
    assert sample(metrics, "kubetune_experiment_hourly_price_dollars") == PRICE
    assert sample(metrics, "kubetune_experiment_max_trials") == 8
    assert sample(metrics, "kubetune_experiment_objective_target") == 0.99
    for state, expected in {"pending": 1, "running": 1, "succeeded": 2, "failed": 1,
                            "killed": 1}.items():
        assert sample(metrics, "kubetune_experiment_trials", state=state) == expected
    assert sample(metrics, "kubetune_experiment_running_trials") == 1
    assert sample(metrics, "kubetune_experiment_gpus_in_use") == 2  # the running trial only
    assert sample(metrics, "kubetune_experiment_best_value") == 0.9
    # Best (trial 0) first reached when trials 1 (600 s) and 0 (900 s) had completed.
    assert sample(metrics, "kubetune_experiment_best_cost_dollars") == pytest.approx(
        1500 / 3600 * PRICE, abs=1e-6)
    assert sample(metrics, "kubetune_experiment_info", phase="Running", algorithm="gp",
                  metric="val_accuracy", goal="maximize") == 1
    # Created at the first update, so a dashboard shows 0 rather than nothing.
    assert sample(metrics, "kubetune_reconcile_errors_total") == 0
    assert sample(metrics, "kubetune_trial_duration_seconds_count") == 0


def test_optional_gauges_are_absent_when_the_spec_or_status_has_no_value() -> None:
    exp = experiment(max_cost=None, target=None)
    metrics = Metrics(process_metrics=False)
    metrics.update("team-a", "exp", exp.spec, status_at(exp, items=[]))
    names = {name for name, _ in samples(metrics)}
    for absent in ("kubetune_experiment_budget_dollars",
                   "kubetune_experiment_budget_remaining_dollars",
                   "kubetune_experiment_objective_target", "kubetune_experiment_best_value",
                   "kubetune_experiment_best_cost_dollars"):
        assert absent not in names
    assert sample(metrics, "kubetune_experiment_cost_dollars") == 0


def test_status_values_survive_a_restart_and_old_trials_are_not_observed_again() -> None:
    exp = experiment()
    first = Metrics(process_metrics=False)
    first.update("team-a", "exp", exp.spec, status_at(exp, items=[]))
    status = status_at(exp)
    for t in status.trials:
        first.trial_finished("team-a", "exp", t)
        first.trial_finished("team-a", "exp", t)  # seen twice: counted once
    first.update("team-a", "exp", exp.spec, status)
    # Succeeded and failed trials are observed; killed, running and pending are not.
    assert sample(first, "kubetune_trial_duration_seconds_count") == 3
    assert sample(first, "kubetune_trial_duration_seconds_sum") == pytest.approx(900 + 600 + 400)
    assert sample(first, "kubetune_trial_duration_seconds_bucket", le="300.0") == 0
    assert sample(first, "kubetune_trial_duration_seconds_bucket", le="600.0") == 2  # 400, 600
    assert sample(first, "kubetune_trial_duration_seconds_bucket", le="1200.0") == 3

    restarted = Metrics(process_metrics=False)  # a new operator process reading the status
    restarted.update("team-a", "exp", exp.spec, status)
    for t in status.trials:
        restarted.trial_finished("team-a", "exp", t)
    assert sample(restarted, "kubetune_trial_duration_seconds_count") == 0
    for name in ("kubetune_experiment_cost_dollars", "kubetune_experiment_gpu_seconds",
                 "kubetune_experiment_best_value", "kubetune_experiment_best_cost_dollars"):
        assert sample(restarted, name) == sample(first, name)
    # A trial that finishes after the restart is observed.
    later = [*trials()[:3], trial(3, TrialState.succeeded, 900, 1500, 0.7)]
    status = status_at(exp, 1600, later)
    restarted.update("team-a", "exp", exp.spec, status)
    restarted.trial_finished("team-a", "exp", status.trials[3])
    assert sample(restarted, "kubetune_trial_duration_seconds_count") == 1
    assert sample(restarted, "kubetune_trial_duration_seconds_sum") == pytest.approx(600)


def test_in_process_metrics_and_forget() -> None:
    exp = experiment()
    metrics = Metrics(process_metrics=False)
    metrics.update("team-a", "exp", exp.spec, status_at(exp))
    metrics.update("team-b", "other", exp.spec, status_at(exp))
    metrics.reconcile_error("team-a", "exp")
    metrics.reconcile_error("team-a", "exp")
    metrics.suggestion_seconds("team-a", "exp", 0.2)
    assert sample(metrics, "kubetune_reconcile_errors_total") == 2
    assert sample(metrics, "kubetune_suggestion_duration_seconds_count") == 1
    assert sample(metrics, "kubetune_suggestion_duration_seconds_bucket", le="0.25") == 1
    assert sample(metrics, "kubetune_suggestion_duration_seconds_bucket", le="0.1") == 0

    metrics.forget("team-a", "exp")
    metrics.forget("team-a", "exp")  # idempotent
    left = {dict(labels).get("experiment") for _, labels in samples(metrics)}
    assert left == {"other"}


def test_duration_buckets_cover_seconds_to_a_day() -> None:
    assert TRIAL_DURATION_BUCKETS[0] <= 1 and TRIAL_DURATION_BUCKETS[-1] >= 86400
    assert list(TRIAL_DURATION_BUCKETS) == sorted(TRIAL_DURATION_BUCKETS)


def test_serve_and_close_release_the_port() -> None:
    exp = experiment()
    metrics = Metrics()
    port = metrics.serve(0, "127.0.0.1")
    try:
        metrics.update("team-a", "exp", exp.spec, status_at(exp))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        assert 'kubetune_experiment_best_value{experiment="exp",namespace="team-a"} 0.9' in text
        assert "process_cpu_seconds_total" in text  # the operator's own health, too
    finally:
        metrics.close()
    with pytest.raises(urllib.error.URLError):  # nothing listens any more
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
    again = Metrics(process_metrics=False)  # and the port can be served again at once
    try:
        assert again.serve(port, "127.0.0.1") == port
    finally:
        again.close()


def test_local_exporter_observes_each_finished_trial_once() -> None:
    exp = experiment()
    exporter = LocalExporter(exp, 0, "127.0.0.1")
    try:
        exporter.update(status_at(exp, 0, []))  # kubetune run's first status: no trials
        status = status_at(exp)
        exporter.update(status)
        exporter.update(status)
        exporter.suggestion_seconds(0.01)
        with urllib.request.urlopen(f"http://127.0.0.1:{exporter.port}/metrics",
                                    timeout=5) as response:
            families = {f.name: f for f in text_string_to_metric_families(
                response.read().decode())}
        count = next(s.value for s in families["kubetune_trial_duration_seconds"].samples
                     if s.name.endswith("_count"))
        assert count == 3
        assert any(s.value == 1 for s in families["kubetune_suggestion_duration_seconds"].samples
                   if s.name.endswith("_count"))
    finally:
        exporter.close()


def test_status_file_round_trip_keeps_the_numbers(tmp_path: Any) -> None:
    """A status as `kubetune run` writes it (YAML, camelCase) gives the same gauges."""
    exp = experiment()
    status = status_at(exp)
    path = tmp_path / "status.yaml"
    exp.status = status
    path.write_text(yaml.safe_dump(document(exp)))
    loaded = load_experiment(yaml.safe_load(path.read_text()))
    direct, reread = Metrics(process_metrics=False), Metrics(process_metrics=False)
    direct.update("team-a", "exp", exp.spec, status)
    reread.update("team-a", "exp", loaded.spec, loaded.status)
    assert samples(direct) == samples(reread)
