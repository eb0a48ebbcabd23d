"""One level-triggered pass over one TuningExperiment.

Each pass reads the experiment, its Jobs and its Pods, rebuilds the trial
record from them, asks the engine what to do, does it, and writes the status
with optimistic concurrency. Nothing is kept in memory between passes, so an
operator killed at any point picks up exactly where the cluster stands:

- Jobs are named ``<experiment>-<index>`` and carry their parameters, so a Job
  created just before a crash is adopted, never created twice (409 = adopt);
- the status is patched with the resourceVersion that was read, so a
  concurrent change makes the pass retry rather than overwrite;
- finished Jobs are deleted (policy ``delete``) only after their result is in
  the stored status.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from kubetune.api.errors import InvalidSpec
from kubetune.api.manifest import load_experiment, parse_status
from kubetune.api.spec import ExperimentSpec
from kubetune.api.status import ExperimentStatus, Trial, TrialState
from kubetune.controller import failpoints
from kubetune.controller.jobs import (
    LABEL_TRIAL,
    adopt,
    build_job,
    job_name,
    observe,
    owned_by,
    selector,
    trial_index,
)
from kubetune.controller.kube import Conflict, Kube
from kubetune.engine import invalid_status, plan, summarize

log = logging.getLogger("kubetune.operator")


class MetricsSink(Protocol):
    def update(self, namespace: str, name: str, spec: ExperimentSpec,
               status: ExperimentStatus) -> None: ...
    def trial_finished(self, namespace: str, name: str, trial: Trial) -> None: ...
    def suggestion_seconds(self, namespace: str, name: str, seconds: float) -> None: ...
    def reconcile_error(self, namespace: str, name: str) -> None: ...
    def forget(self, namespace: str, name: str) -> None: ...


@dataclass
class OperatorConfig:
    default_price: float | None = None
    gpu_prices: dict[str, float] = field(default_factory=dict)
    gpu_type_label: str = "nvidia.com/gpu.product"
    finished_jobs: str = "keep"  # keep | delete


@dataclass(frozen=True)
class PassResult:
    active: bool  # trials are pending or running: poll again soon
    finished: bool = False


def parse_gpu_prices(text: str | None) -> dict[str, float]:
    """``"nvidia-tesla-t4=0.35,nvidia-a100=2.9"`` -> {type: dollars per hour}."""
    out: dict[str, float] = {}
    for item in filter(None, (s.strip() for s in (text or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--gpu-prices: expected TYPE=PRICE, got {item!r}")
        out[key.strip()] = float(value)
    return out


def _now() -> datetime:
    return datetime.now(UTC)


def _dump(status: ExperimentStatus) -> dict[str, Any]:
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


class Reconciler:
    def __init__(self, kube: Kube, config: OperatorConfig | None = None,
                 metrics: MetricsSink | None = None) -> None:
        self.kube = kube
        self.config = config or OperatorConfig()
        self.metrics = metrics

    # ------------------------------------------------------------------------- entry
    def reconcile(self, namespace: str, name: str) -> PassResult:
        obj = self.kube.get_experiment(namespace, name)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            if self.metrics is not None:
                self.metrics.forget(namespace, name)
            return PassResult(active=False, finished=True)
        generation = obj["metadata"].get("generation")
        try:
            previous = parse_status(obj.get("status"))
        except ValueError:
            log.warning("%s/%s: unreadable status, starting from the Jobs", namespace, name)
            previous = ExperimentStatus()
        try:
            experiment = load_experiment(obj)
        except InvalidSpec as error:
            self._invalid(obj, previous, error, generation)
            return PassResult(active=False)
        if previous.phase in ("Succeeded", "Failed"):
            self._stop_leftovers(obj, experiment.spec, previous)
            return PassResult(active=False, finished=True)
        return self._run(obj, experiment.spec, previous, generation)

    # ------------------------------------------------------------------------ passes
    def _invalid(self, obj: Mapping[str, Any], previous: ExperimentStatus, error: InvalidSpec,
                 generation: int | None) -> None:
        meta = obj["metadata"]
        status = invalid_status(error.problems, _now(), previous, generation)
        before = previous.condition("Valid")
        after = status.condition("Valid")
        if before is not None and after is not None and before.status == after.status and \
                before.message == after.message and previous.observed_generation == generation:
            return
        self.kube.patch_status(meta["namespace"], meta["name"], meta["resourceVersion"],
                               _dump(status))
        self.kube.event(dict(obj), "Warning", "InvalidSpec", str(error))

    def _stop_leftovers(self, obj: Mapping[str, Any], spec: ExperimentSpec,
                        status: ExperimentStatus) -> None:
        """A finished experiment keeps no trial running (e.g. after a crash mid-kill)."""
        meta = obj["metadata"]
        jobs = {trial_index(j): j for j in self.kube.list_jobs(meta["namespace"], selector(meta["name"]))
                if owned_by(j, meta["uid"])}
        for job in jobs.values():
            if not _job_finished(job):
                self.kube.delete_job(meta["namespace"], job["metadata"]["name"])
        self._collect_finished_jobs(meta["namespace"], status, jobs)
        if self.metrics is not None:
            self.metrics.update(meta["namespace"], meta["name"], spec, status)

    def _run(self, obj: Mapping[str, Any], spec: ExperimentSpec, previous: ExperimentStatus,
             generation: int | None) -> PassResult:
        meta = obj["metadata"]
        namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
        now = _now()
        jobs = {trial_index(j): j for j in self.kube.list_jobs(namespace, selector(name))
                if owned_by(j, uid) and trial_index(j) is not None}
        pods: dict[int, list[dict[str, Any]]] = {}
        for pod in self.kube.list_pods(namespace, selector(name)):
            index = trial_index(pod)
            if index is not None:
                pods.setdefault(index, []).append(pod)

        trials = {t.index: t for t in previous.trials}
        for index, job in jobs.items():
            if index not in trials and (adopted := adopt(job, spec)) is not None:
                trials[index] = adopted
        container = spec.trial_template.container["name"]
        for index, trial in list(trials.items()):
            if TrialState(trial.state).finished:
                continue
            trials[index] = observe(
                trial, jobs.get(index), pods.get(index, []), spec, now,
                lambda pod, c=container: self.kube.read_log(namespace, pod, c),
            )

        self._price_by_gpu_type(spec, trials, pods)
        started = time.perf_counter()
        decision = plan(spec, list(trials.values()), now, default_price=self.config.default_price)
        if decision.launch and self.metrics is not None:
            self.metrics.suggestion_seconds(namespace, name, time.perf_counter() - started)

        for index in decision.kill:
            self.kube.delete_job(namespace, job_name(name, index))
            trials[index] = trials[index].model_copy(update={
                "state": TrialState.killed, "reason": decision.finished.value
                if decision.finished else "Stopped",
                "message": "the experiment finished while this trial ran", "finish_time": now,
            })
        for trial in decision.launch:
            created = self._create(obj, spec, trial)
            if created is not None:
                trials[created.index] = created

        status = summarize(
            spec, list(trials.values()), now, previous=previous, generation=generation,
            finished=decision.finished, message=decision.message,
            default_price=self.config.default_price,
        )
        try:
            self.kube.patch_status(namespace, name, meta["resourceVersion"], _dump(status))
        except Conflict:
            log.info("%s/%s changed while reconciling; retrying", namespace, name)
            return PassResult(active=True)
        failpoints.hit("status-patched")
        self._after_patch(obj, spec, previous, status, jobs)
        active = status.counts.pending + status.counts.running > 0
        return PassResult(active=active or bool(decision.launch) or self._cleanup_due(previous,
                                                                                        status, jobs),
                          finished=decision.finished is not None)

    def _cleanup_due(self, previous: ExperimentStatus, status: ExperimentStatus,
                     jobs: Mapping[int | None, Mapping[str, Any]]) -> bool:
        """Results recorded just now whose Jobs the ``delete`` policy removes on the next pass."""
        if self.config.finished_jobs != "delete":
            return False
        before = {t.index for t in previous.trials if TrialState(t.state).finished}
        return any(t.index in jobs and t.index not in before
                   for t in status.trials if TrialState(t.state).finished)

    def _price_by_gpu_type(self, spec: ExperimentSpec, trials: dict[int, Trial],
                           pods: Mapping[int, list[dict[str, Any]]]) -> None:
        """Per-GPU-type prices (operator configuration) for experiments that set no price.

        The GPU type is the value of ``gpu_type_label`` on the node the trial's
        pod was bound to; it is resolved once, when the trial starts running.
        """
        if not self.config.gpu_prices or spec.cost.price_per_hour is not None:
            return
        labels: dict[str, dict[str, str]] = {}
        for index, trial in trials.items():
            if trial.price_per_hour is not None or trial.start_time is None:
                continue
            node = next((p.get("spec", {}).get("nodeName") for p in pods.get(index, [])
                         if p.get("spec", {}).get("nodeName")), None)
            if node is None:
                continue
            if node not in labels:
                labels[node] = self.kube.node_labels(node)
            price = self.config.gpu_prices.get(labels[node].get(self.config.gpu_type_label, ""))
            if price is not None:
                trials[index] = trial.model_copy(update={"price_per_hour": price})

    def _create(self, obj: Mapping[str, Any], spec: ExperimentSpec, trial: Trial) -> Trial | None:
        meta = obj["metadata"]
        job = build_job(meta["name"], meta["namespace"], meta["uid"], spec, trial)
        try:
            self.kube.create_job(meta["namespace"], job)
        except Conflict:
            existing = self.kube.get_job(meta["namespace"], job["metadata"]["name"])
            if existing is None or not owned_by(existing, meta["uid"]):
                log.warning("%s exists and is not ours; will retry", job["metadata"]["name"])
                return None
            log.info("adopting existing %s", job["metadata"]["name"])
            return adopt(existing, spec)
        failpoints.hit("job-created")
        return trial

    def _after_patch(self, obj: Mapping[str, Any], spec: ExperimentSpec,
                     previous: ExperimentStatus, status: ExperimentStatus,
                     jobs: Mapping[int | None, Mapping[str, Any]]) -> None:
        """Events and metrics for what changed, and the finished-Jobs policy."""
        meta = obj["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        before = {t.index: t for t in previous.trials}
        for trial in status.trials:
            old = before.get(trial.index)
            state = TrialState(trial.state)
            if old is not None and old.state == trial.state:
                continue
            if old is None:
                self.kube.event(dict(obj), "Normal", "TrialCreated",
                                f"trial {trial.index} created: {_params(trial)}")
            if state == TrialState.running:
                self.kube.event(dict(obj), "Normal", "TrialStarted", f"trial {trial.index} running")
            elif state == TrialState.succeeded:
                self.kube.event(dict(obj), "Normal", "TrialSucceeded",
                                f"trial {trial.index}: {spec.objective.metric}={trial.value:g}")
            elif state == TrialState.failed:
                self.kube.event(dict(obj), "Warning", "TrialFailed",
                                f"trial {trial.index}: {trial.reason}: {trial.message or ''}")
            elif state == TrialState.killed:
                self.kube.event(dict(obj), "Normal", "TrialKilled",
                                f"trial {trial.index}: {trial.reason}")
            if state.finished and self.metrics is not None:
                self.metrics.trial_finished(namespace, name, trial)
        if status.phase != previous.phase and status.phase in ("Succeeded", "Failed"):
            condition = status.condition(status.phase)
            self.kube.event(
                dict(obj), "Normal" if status.phase == "Succeeded" else "Warning",
                f"Experiment{status.phase}",
                f"{condition.reason}: {condition.message}" if condition else status.phase,
            )
        if self.metrics is not None:
            self.metrics.update(namespace, name, spec, status)
        self._collect_finished_jobs(namespace, previous, jobs)

    def _collect_finished_jobs(self, namespace: str, recorded_status: ExperimentStatus,
                               jobs: Mapping[int | None, Mapping[str, Any]]) -> None:
        """Policy ``delete``: remove finished Jobs whose result is already in the stored status."""
        if self.config.finished_jobs != "delete":
            return
        recorded = {t.index for t in recorded_status.trials if TrialState(t.state).finished}
        for index, job in jobs.items():
            if index in recorded and _job_finished(job):
                self.kube.delete_job(namespace, job["metadata"]["name"])


def _params(trial: Trial) -> str:
    return " ".join(f"{k}={v}" for k, v in trial.parameters.items())


def _job_finished(job: Mapping[str, Any]) -> bool:
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions") or [])


__all__ = ["LABEL_TRIAL", "OperatorConfig", "PassResult", "Reconciler", "parse_gpu_prices"]
