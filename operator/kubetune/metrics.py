"""Prometheus metrics for the operator and ``kubetune run``.

Two kinds of values, kept apart on purpose:

- What must survive an operator restart (trials by state, dollars spent, GPU
  seconds, the best value and what it cost) is *derived from the status* at
  scrape time by :class:`StatusCollector`: the status is the durable record,
  so a restarted operator reports the same numbers as soon as it has seen
  each experiment once. No in-memory counter can drift from the resource.
- What only this process can see (how long trials it watched took, how long
  suggestions took, reconcile errors) is an ordinary prometheus-client
  histogram or counter, so it starts from zero with the process, as
  Prometheus' ``rate``/``increase`` expect.

Every series carries ``namespace`` and ``experiment`` labels. Names follow
the Prometheus conventions: ``kubetune_`` prefix, base units (seconds,
dollars) as suffix, ``_total`` only on counters.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from kubetune.analysis import best_seen_trace
from kubetune.api.manifest import Experiment
from kubetune.api.spec import ExperimentSpec
from kubetune.api.status import ExperimentStatus, Trial, TrialState
from kubetune.cost import running_seconds

LABELS = ("namespace", "experiment")
STATES = tuple(state.name for state in TrialState)  # pending, running, succeeded, failed, killed

# Trials run from seconds (smoke tests, tiny models) to many hours (real GPU training).
TRIAL_DURATION_BUCKETS = (
    1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400,
)
# A GP suggestion takes milliseconds to a few seconds (the fit grows with history).
SUGGESTION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

Key = tuple[str, str]


@dataclass(frozen=True)
class Snapshot:
    """What one experiment's status says, reduced to the exported numbers."""

    phase: str
    algorithm: str
    metric: str
    goal: str
    trials: dict[str, int]  # by state name (pending, running, ...)
    max_trials: int
    gpus_in_use: int
    best_value: float | None
    best_cost: float | None  # dollars spent when the current best was first reached
    target: float | None
    cost: float
    budget: float | None
    budget_remaining: float | None
    gpu_seconds: float
    hourly_price: float | None

    @classmethod
    def of(cls, spec: ExperimentSpec, status: ExperimentStatus) -> Snapshot:
        counts = status.counts
        improvements = [p for p in best_seen_trace(spec, status.trials) if p.improved]
        return cls(
            phase=status.phase or "Created",
            algorithm=str(spec.algorithm.name),
            metric=spec.objective.metric,
            goal=str(spec.objective.goal),
            trials={state: getattr(counts, state) for state in STATES},
            max_trials=spec.budget.max_trials,
            gpus_in_use=sum(t.gpus for t in status.trials if t.state == TrialState.running),
            best_value=status.best.value if status.best else None,
            best_cost=improvements[-1].cost if improvements and status.best else None,
            target=spec.objective.target,
            cost=status.total_cost,
            budget=spec.budget.max_cost,
            budget_remaining=status.remaining_budget,
            gpu_seconds=status.gpu_seconds,
            hourly_price=status.price_per_hour,
        )


class StatusCollector:
    """Yields the status-derived gauges of every experiment seen, at scrape time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshots: dict[Key, Snapshot] = {}

    def set(self, key: Key, snapshot: Snapshot) -> None:
        with self._lock:
            self._snapshots[key] = snapshot

    def forget(self, key: Key) -> None:
        with self._lock:
            self._snapshots.pop(key, None)

    def describe(self) -> Iterable[Metric]:
        return []  # names are fixed and distinct from the registry's other metrics

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snapshots = sorted(self._snapshots.items())

        def gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=[*LABELS, *extra])

        info = gauge("kubetune_experiment_info",
                     "Always 1; the experiment's phase, algorithm and objective as labels.",
                     ("phase", "algorithm", "metric", "goal"))
        trials = gauge("kubetune_experiment_trials", "Trials by state, from the status.",
                       ("state",))
        running = gauge("kubetune_experiment_running_trials", "Trials running now.")
        max_trials = gauge("kubetune_experiment_max_trials", "budget.maxTrials.")
        gpus = gauge("kubetune_experiment_gpus_in_use", "GPUs requested by the running trials.")
        best = gauge("kubetune_experiment_best_value", "Best objective value so far.")
        best_cost = gauge("kubetune_experiment_best_cost_dollars",
                          "Dollars spent by completed trials when the current best value was "
                          "first reached.")
        target = gauge("kubetune_experiment_objective_target", "objective.target, when set.")
        cost = gauge("kubetune_experiment_cost_dollars",
                     "Dollars spent so far (status.totalCost), running trials included.")
        budget = gauge("kubetune_experiment_budget_dollars", "budget.maxCost, when set.")
        remaining = gauge("kubetune_experiment_budget_remaining_dollars",
                          "budget.maxCost minus the dollars spent, when maxCost is set.")
        gpu_seconds = gauge("kubetune_experiment_gpu_seconds",
                            "Charged running time x GPUs requested, summed over trials.")
        price = gauge("kubetune_experiment_hourly_price_dollars",
                      "Dollars per trial-hour in effect for the experiment.")
        for (namespace, name), snap in snapshots:
            labels = [namespace, name]
            info.add_metric([*labels, snap.phase, snap.algorithm, snap.metric, snap.goal], 1)
            for state, value in snap.trials.items():
                trials.add_metric([*labels, state], value)
            running.add_metric(labels, snap.trials["running"])
            max_trials.add_metric(labels, snap.max_trials)
            gpus.add_metric(labels, snap.gpus_in_use)
            cost.add_metric(labels, snap.cost)
            gpu_seconds.add_metric(labels, snap.gpu_seconds)
            for family, value in ((best, snap.best_value), (best_cost, snap.best_cost),
                                  (target, snap.target), (budget, snap.budget),
                                  (remaining, snap.budget_remaining), (price, snap.hourly_price)):
                if value is not None:
                    family.add_metric(labels, value)
        yield from (info, trials, running, max_trials, gpus, best, best_cost, target, cost,
                    budget, remaining, gpu_seconds, price)


class Metrics:
    """All kubetune metrics on one registry of their own (not prometheus-client's global one).

    The operator calls :meth:`update` with each status it writes (or reads at
    startup), :meth:`trial_finished` when it sees a trial end,
    :meth:`suggestion_seconds` after each suggestion and :meth:`reconcile_error`
    when a reconcile fails; :meth:`serve` exposes ``/metrics``.
    """

    def __init__(self, *, process_metrics: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.status = StatusCollector()
        self.registry.register(self.status)
        self.trial_duration = Histogram(
            "kubetune_trial_duration_seconds",
            "Running time of trials that completed (Succeeded or Failed), observed by this "
            "process when it saw them finish.",
            LABELS, buckets=TRIAL_DURATION_BUCKETS, registry=self.registry,
        )
        self.suggestion_duration = Histogram(
            "kubetune_suggestion_duration_seconds",
            "Time to compute the next configurations (one suggester call).",
            LABELS, buckets=SUGGESTION_BUCKETS, registry=self.registry,
        )
        self.reconcile_errors = Counter(
            "kubetune_reconcile_errors", "Reconciles of the experiment that raised an error.",
            LABELS, registry=self.registry,
        )
        if process_metrics:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        self._lock = threading.Lock()
        self._observed: dict[Key, set[int]] = {}
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ operator API
    def update(self, namespace: str, name: str, spec: ExperimentSpec,
               status: ExperimentStatus) -> None:
        """Record the experiment's latest status; scrapes report what it says.

        The first update of an experiment marks every trial already finished in
        that status as observed, so a restarted process does not feed trials
        finished before the restart into the duration histogram again.
        """
        key = (namespace, name)
        self.status.set(key, Snapshot.of(spec, status))
        with self._lock:
            if key not in self._observed:
                self._observed[key] = {
                    t.index for t in status.trials if TrialState(t.state).finished
                }
                # Create the children now: a series at 0 beats a missing series.
                self.trial_duration.labels(namespace, name)
                self.suggestion_duration.labels(namespace, name)
                self.reconcile_errors.labels(namespace, name)

    def forget(self, namespace: str, name: str) -> None:
        """Drop every series of a deleted experiment."""
        key = (namespace, name)
        self.status.forget(key)
        with self._lock:
            self._observed.pop(key, None)
        for metric in (self.trial_duration, self.suggestion_duration, self.reconcile_errors):
            with contextlib.suppress(KeyError):
                metric.remove(namespace, name)

    def trial_finished(self, namespace: str, name: str, trial: Trial) -> None:
        """Observe a finished trial's running time, once per trial index.

        Killed trials (stopped by kubetune) and trials that never started are
        marked seen but not observed: they have no meaningful duration.
        """
        state = TrialState(trial.state)
        if not state.finished:
            return
        with self._lock:
            seen = self._observed.setdefault((namespace, name), set())
            if trial.index in seen:
                return
            seen.add(trial.index)
        if state == TrialState.killed or trial.start_time is None:
            return
        seconds = trial.duration_seconds
        if seconds is None and trial.finish_time is not None:
            seconds = running_seconds(trial, trial.finish_time)
        if seconds is not None:
            self.trial_duration.labels(namespace, name).observe(seconds)

    def suggestion_seconds(self, namespace: str, name: str, seconds: float) -> None:
        self.suggestion_duration.labels(namespace, name).observe(seconds)

    def reconcile_error(self, namespace: str, name: str) -> None:
        self.reconcile_errors.labels(namespace, name).inc()

    # ---------------------------------------------------------------------- serving
    def serve(self, port: int, addr: str = "0.0.0.0") -> int:
        """Serve ``/metrics`` from a daemon thread; returns the bound port (``port`` 0: any)."""
        if self._server is not None:
            raise RuntimeError("already serving")
        self._server, self._thread = start_http_server(port, addr, registry=self.registry)
        return int(self._server.server_port)

    @property
    def port(self) -> int | None:
        return None if self._server is None else int(self._server.server_port)

    def close(self) -> None:
        """Stop serving and release the port."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)


class LocalExporter:
    """``kubetune run --metrics-port``: the same metrics for one local experiment."""

    def __init__(self, experiment: Experiment, port: int, addr: str = "0.0.0.0") -> None:
        self.experiment = experiment
        self.metrics = Metrics()
        self.port = self.metrics.serve(port, addr)

    def update(self, status: ExperimentStatus) -> None:
        """Publish ``status``; trials it shows finished for the first time are observed."""
        namespace, name = self.experiment.namespace, self.experiment.name
        self.metrics.update(namespace, name, self.experiment.spec, status)
        for trial in status.trials:
            self.metrics.trial_finished(namespace, name, trial)

    def suggestion_seconds(self, seconds: float) -> None:
        self.metrics.suggestion_seconds(self.experiment.namespace, self.experiment.name, seconds)

    def close(self) -> None:
        self.metrics.close()
