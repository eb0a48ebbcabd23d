"""Trials as batch/v1 Jobs: building them, and reading trials back from Jobs and Pods.

Pure functions over plain Kubernetes objects (dicts), so the rules that make
the operator restart-safe (deterministic names, parameters carried on the
Job, adoption) are tested without a cluster.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from kubetune.api.spec import API_VERSION, KIND, ExperimentSpec
from kubetune.api.status import Trial, TrialState
from kubetune.results import parse_outcome
from kubetune.trials import parameter_args, trial_env

LABEL_EXPERIMENT = "kubetune.io/experiment"
LABEL_TRIAL = "kubetune.io/trial"
ANNOTATION_PARAMETERS = "kubetune.io/parameters"


def job_name(experiment: str, index: int) -> str:
    return f"{experiment}-{index}"


def selector(experiment: str) -> str:
    return f"{LABEL_EXPERIMENT}={experiment}"


def build_job(
    experiment: str, namespace: str, uid: str, spec: ExperimentSpec, trial: Trial
) -> dict[str, Any]:
    """The Job of one trial, owned by the experiment (so deleting it deletes the Job)."""
    job_spec = copy.deepcopy(spec.trial_template.spec)
    template_meta = spec.trial_template.metadata or {}
    labels = {
        **(template_meta.get("labels") or {}),
        LABEL_EXPERIMENT: experiment,
        LABEL_TRIAL: str(trial.index),
    }
    annotations = {
        **(template_meta.get("annotations") or {}),
        ANNOTATION_PARAMETERS: json.dumps(trial.parameters, sort_keys=True),
    }
    job_spec.setdefault("backoffLimit", 0)
    timeout = spec.budget.trial_timeout_seconds
    if timeout is not None:
        job_spec["activeDeadlineSeconds"] = timeout
    pod = job_spec["template"]
    pod_meta = pod.setdefault("metadata", {})
    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), LABEL_EXPERIMENT: experiment,
                          LABEL_TRIAL: str(trial.index)}
    pod_spec = pod["spec"]
    pod_spec.setdefault("restartPolicy", "Never")
    container = pod_spec["containers"][0]
    container["args"] = [*(container.get("args") or []), *parameter_args(spec, trial.parameters)]
    names = {e.get("name") for e in container.get("env") or []}
    extra = [{"name": k, "value": v} for k, v in trial_env(experiment, namespace, trial.index).items()
             if k not in names]
    container["env"] = [*(container.get("env") or []), *extra]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(experiment, trial.index),
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": experiment,
                "uid": uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }],
        },
        "spec": job_spec,
    }


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid for ref in refs)


def trial_index(obj: Mapping[str, Any]) -> int | None:
    value = ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_TRIAL)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def adopt(job: Mapping[str, Any], spec: ExperimentSpec) -> Trial | None:
    """A trial record rebuilt from a Job the status does not know yet.

    This is what makes a crash between "Job created" and "status patched"
    harmless: the Job carries its index and parameters.
    """
    index = trial_index(job)
    raw = ((job.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_PARAMETERS)
    if index is None or raw is None:
        return None
    try:
        parameters = json.loads(raw)
    except ValueError:
        return None
    return Trial(index=index, parameters=parameters, state=TrialState.pending,
                 gpus=spec.trial_template.gpus())


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _condition(job: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            return condition
    return None


def _trial_container_status(pod: Mapping[str, Any], container: str) -> Mapping[str, Any] | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container:
            return status
    return None


def _pod_times(pods: list[Mapping[str, Any]], container: str) -> tuple[datetime | None, datetime | None]:
    """First container start and last container end over all of a Job's pods (retries)."""
    starts, ends = [], []
    for pod in pods:
        status = _trial_container_status(pod, container) or {}
        state = status.get("state") or {}
        running = state.get("running") or {}
        terminated = state.get("terminated") or {}
        for value in (running.get("startedAt"), terminated.get("startedAt")):
            if value:
                starts.append(_time(value))
        if terminated.get("finishedAt"):
            ends.append(_time(terminated["finishedAt"]))
    return (min(starts) if starts else None), (max(ends) if ends else None)


def _last_terminated(pods: list[Mapping[str, Any]], container: str) -> Mapping[str, Any] | None:
    best = None
    for pod in pods:
        terminated = ((_trial_container_status(pod, container) or {}).get("state") or {}).get(
            "terminated")
        if terminated and (best is None or str(terminated.get("finishedAt")) >= str(
                best.get("finishedAt"))):
            best = terminated
    return best


def observe(
    trial: Trial,
    job: Mapping[str, Any] | None,
    pods: list[Mapping[str, Any]],
    spec: ExperimentSpec,
    now: datetime,
    read_log: Callable[[str], str | None],
) -> Trial:
    """The trial's state as its Job and Pods show it now.

    ``read_log(pod_name)`` is only called when a finished trial left no
    termination message, for the fallback to the last JSON line of its log.
    """
    if TrialState(trial.state).finished:
        return trial
    if job is None:
        return trial.model_copy(update={
            "state": TrialState.killed, "reason": "JobDeleted", "finish_time": now,
            "message": "the trial's Job was deleted before it finished; no observation is "
                       "recorded and another trial takes its place",
        })
    container = spec.trial_template.container["name"]
    start, end = _pod_times(pods, container)
    start = start or trial.start_time
    complete = _condition(job, "Complete")
    failed = _condition(job, "Failed")
    if complete is None and failed is None:
        if start is not None:
            return trial.model_copy(update={"state": TrialState.running, "start_time": start})
        return trial
    finish = end or _time((complete or failed or {}).get("lastTransitionTime")) or now
    terminated = _last_terminated(pods, container)
    if failed is not None and (terminated is None or failed.get("reason") == "DeadlineExceeded"):
        return trial.model_copy(update={
            "state": TrialState.failed, "reason": failed.get("reason") or "JobFailed",
            "message": (failed.get("message") or "")[:512], "start_time": start,
            "finish_time": finish,
        })
    message = (terminated or {}).get("message")
    exit_code = (terminated or {}).get("exitCode")
    log = None
    if not (message or "").strip():
        pod_name = _pod_of(pods, terminated)
        log = read_log(pod_name) if pod_name else None
    outcome = parse_outcome(spec.objective.metric, 0 if complete else (exit_code or 1),
                            message, log)
    return trial.model_copy(update={
        "state": outcome.state, "value": outcome.value, "metrics": outcome.metrics or None,
        "reason": outcome.reason, "message": outcome.message, "start_time": start,
        "finish_time": finish,
    })


def _pod_of(pods: list[Mapping[str, Any]], terminated: Mapping[str, Any] | None) -> str | None:
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if (status.get("state") or {}).get("terminated") is terminated:
                return pod["metadata"]["name"]
    return pods[-1]["metadata"]["name"] if pods else None
