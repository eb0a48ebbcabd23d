"""An in-memory stand-in for the Kubernetes API, for reconciler logic tests.

It enforces what the operator's restart safety relies on: 409 on creating an
existing name, 409 on a status patch with a stale resourceVersion.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from kubetune.controller.kube import Conflict

_rv = itertools.count(1)


class FakeKube:
    def __init__(self) -> None:
        self.experiments: dict[tuple[str, str], dict[str, Any]] = {}
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: list[tuple[str, str, str]] = []
        self.logs: dict[str, str] = {}
        self.creates = 0

    def add_experiment(self, doc: dict[str, Any]) -> dict[str, Any]:
        doc = copy.deepcopy(doc)
        meta = doc.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        meta.setdefault("uid", f"uid-{meta['name']}")
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = str(next(_rv))
        self.experiments[(meta["namespace"], meta["name"])] = doc
        return doc

    # -- API surface used by the reconciler ---------------------------------------
    def get_experiment(self, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self.experiments.get((namespace, name))
        return copy.deepcopy(obj) if obj else None

    def patch_status(self, namespace: str, name: str, resource_version: str,
                     status: dict[str, Any]) -> dict[str, Any]:
        obj = self.experiments[(namespace, name)]
        if obj["metadata"]["resourceVersion"] != resource_version:
            raise Conflict(name)
        obj["status"] = copy.deepcopy(status)
        obj["metadata"]["resourceVersion"] = str(next(_rv))
        return copy.deepcopy(obj)

    def list_jobs(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(j) for (ns, _), j in sorted(self.jobs.items())
                if ns == namespace and _matches(j, label_selector)]

    def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(p) for (ns, _), p in sorted(self.pods.items())
                if ns == namespace and _matches(p, label_selector)]

    def create_job(self, namespace: str, job: dict[str, Any]) -> dict[str, Any]:
        key = (namespace, job["metadata"]["name"])
        if key in self.jobs:
            raise Conflict(key[1])
        self.creates += 1
        self.jobs[key] = copy.deepcopy(job)
        return job

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        job = self.jobs.get((namespace, name))
        return copy.deepcopy(job) if job else None

    def delete_job(self, namespace: str, name: str) -> None:
        self.jobs.pop((namespace, name), None)
        for key, pod in list(self.pods.items()):
            if pod["metadata"]["labels"].get("job-name") == name:
                del self.pods[key]

    def read_log(self, namespace: str, pod: str, container: str, tail_lines: int = 50) -> str | None:
        return self.logs.get(pod)

    def node_labels(self, name: str) -> dict[str, str]:
        return {}

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    # -- what a kubelet and the Job controller would do -------------------------------
    def finish_job(self, name: str, *, message: str | None, exit_code: int = 0,
                   namespace: str = "default", started: str = "2026-01-01T00:00:00Z",
                   finished: str = "2026-01-01T00:30:00Z") -> None:
        job = self.jobs[(namespace, name)]
        labels = dict(job["spec"]["template"]["metadata"]["labels"], **{"job-name": name})
        container = job["spec"]["template"]["spec"]["containers"][0]["name"]
        self.pods[(namespace, f"{name}-pod")] = {
            "metadata": {"name": f"{name}-pod", "namespace": namespace, "labels": labels},
            "status": {"phase": "Succeeded" if exit_code == 0 else "Failed", "containerStatuses": [{
                "name": container,
                "state": {"terminated": {"exitCode": exit_code, "message": message,
                                         "startedAt": started, "finishedAt": finished}},
            }]},
        }
        kind = "Complete" if exit_code == 0 else "Failed"
        job["status"] = {"conditions": [{"type": kind, "status": "True",
                                         "lastTransitionTime": finished}]}


def _matches(obj: dict[str, Any], selector: str) -> bool:
    key, _, value = selector.partition("=")
    return (obj["metadata"].get("labels") or {}).get(key) == value


@pytest.fixture
def fake_kube() -> FakeKube:
    return FakeKube()
