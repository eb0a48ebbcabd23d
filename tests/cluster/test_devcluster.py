"""The local control plane behaves as a real cluster for what kubetune relies on.

Jobs complete and fail through the real Job controller, the scheduler accounts
for nvidia.com/gpu, garbage collection kills processes, `kubectl logs` works,
and RBAC is enforced.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from kubetune.devcluster.cluster import LocalCluster, write_kubeconfig
from kubetune.devcluster.kubeapi import ApiException, KubeAPI

pytestmark = pytest.mark.cluster

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Poll `probe` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def container(code: str, *, gpus: int = 1, **extra: Any) -> dict[str, Any]:
    """A trial-like container: `python -c code` (python resolved through PATH)."""
    return {
        "name": "trial", "image": "kubetune/trainer:dev", "command": ["python", "-c", code],
        "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}, **extra,
    }


def job(name: str, c: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never", "terminationGracePeriodSeconds": 5, "containers": [c]}}},
    }


def job_condition(kube: KubeAPI, ns: str, name: str) -> str | None:
    status = kube.get(f"/apis/batch/v1/namespaces/{ns}/jobs/{name}").get("status", {})
    for cond in status.get("conditions") or []:
        if cond["type"] in ("Complete", "Failed") and cond["status"] == "True":
            return str(cond["type"])
    return None


def job_pods(kube: KubeAPI, ns: str, name: str) -> list[dict[str, Any]]:
    return kube.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=f"job-name={name}")["items"]


def terminated(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["status"]["containerStatuses"][0]["state"]["terminated"]


def test_job_completes_with_termination_message_and_logs(
    local_cluster: LocalCluster, kube: KubeAPI, namespace: str
) -> None:
    result = {"metric": 0.97, "trial": 1}
    code = (
        "import json, os; "
        f"open(os.environ['KUBETUNE_TERMINATION_LOG'], 'w').write(json.dumps({result!r})); "
        "print('hello from', os.environ['POD_NAME'], os.environ['GREETING'], flush=True)"
    )
    c = container(code, env=[
        {"name": "WHO", "value": "world"},
        {"name": "GREETING", "value": "hi-$(WHO)"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ])
    kube.request("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", body=job("ok", c))

    assert wait_for("Job Complete", lambda: job_condition(kube, namespace, "ok")) == "Complete"
    (pod,) = job_pods(kube, namespace, "ok")
    assert pod["spec"]["nodeName"] == local_cluster.node_name
    assert pod["status"]["phase"] == "Succeeded"
    term = terminated(pod)
    assert term["exitCode"] == 0
    assert term["reason"] == "Completed"
    assert json.loads(term["message"]) == result
    assert pod["status"]["startTime"] and term["startedAt"] and term["finishedAt"]

    name = pod["metadata"]["name"]
    logs = local_cluster.kubectl("logs", "-n", namespace, name).stdout
    assert logs == f"hello from {name} hi-world\n"
    tail = local_cluster.kubectl("logs", "-n", namespace, name, "--tail=1").stdout
    assert tail == logs

    # The typed client reads 1.20 objects too (what the operator will use).
    from kubernetes import client

    with local_cluster.api_client() as api:
        typed = client.BatchV1Api(api).read_namespaced_job("ok", namespace)
        assert typed.status.succeeded == 1


def test_failing_job_reports_exit_code(kube: KubeAPI, namespace: str) -> None:
    code = "import sys; print('diverged: loss is nan', flush=True); sys.exit(3)"
    c = container(code, terminationMessagePolicy="FallbackToLogsOnError")
    kube.request("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", body=job("bad", c))

    assert wait_for("Job Failed", lambda: job_condition(kube, namespace, "bad")) == "Failed"
    (pod,) = job_pods(kube, namespace, "bad")
    assert pod["status"]["phase"] == "Failed"
    term = terminated(pod)
    assert term["exitCode"] == 3
    assert term["reason"] == "Error"
    assert "diverged: loss is nan" in term["message"]  # fallback to the log tail


def _busy_pods(kube: KubeAPI, node: str) -> list[str]:
    pods = kube.get("/api/v1/pods", fieldSelector=f"spec.nodeName={node}")["items"]
    return [p["metadata"]["name"] for p in pods
            if p["status"].get("phase") not in ("Succeeded", "Failed")]


def test_gpu_capacity_leaves_one_pod_pending(
    local_cluster: LocalCluster, kube: KubeAPI, namespace: str, tmp_path: Path
) -> None:
    gpus = local_cluster.resources.gpus
    wait_for("GPUs free of other tests' pods",
             lambda: not _busy_pods(kube, local_cluster.node_name))
    release = tmp_path / "release"
    release.mkdir()
    names = [f"gpu-{i}" for i in range(gpus + 1)]
    for name in names:
        code = (f"import os, time\nwhile not os.path.exists({str(release / name)!r}):\n"
                "    time.sleep(0.1)")
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
               "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 5,
                        "containers": [container(code)]}}
        kube.request("POST", f"/api/v1/namespaces/{namespace}/pods", body=pod)

    def phases() -> dict[str, dict[str, Any]]:
        items = kube.get(f"/api/v1/namespaces/{namespace}/pods")["items"]
        return {p["metadata"]["name"]: p for p in items}

    def split() -> tuple[list[str], list[str]] | None:
        pods = phases()
        running = [n for n, p in pods.items() if p["status"].get("phase") == "Running"]
        pending = [n for n, p in pods.items() if p["status"].get("phase") == "Pending"]
        return (running, pending) if len(running) == gpus and len(pending) == 1 else None

    running, (pending,) = wait_for(f"{gpus} Running and 1 Pending", split)
    time.sleep(2)  # it stays Pending: no GPU is free
    pod = phases()[pending]
    assert pod["status"]["phase"] == "Pending"
    assert "nodeName" not in pod["spec"]
    sched = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert sched and sched[0]["status"] == "False" and sched[0]["reason"] == "Unschedulable"
    assert "nvidia.com/gpu" in sched[0]["message"]

    (release / running[0]).touch()  # one trial finishes and frees its GPU
    wait_for("the Pending pod to run",
             lambda: phases()[pending]["status"].get("phase") == "Running", timeout=90)
    assert phases()[running[0]]["status"]["phase"] == "Succeeded"
    for name in names:
        (release / name).touch()
    wait_for("all pods Succeeded", lambda: all(
        p["status"].get("phase") == "Succeeded" for p in phases().values()))


def test_deleting_job_garbage_collects_pod_and_kills_process(
    local_cluster: LocalCluster, kube: KubeAPI, namespace: str
) -> None:
    c = container("import time\nprint('training', flush=True)\ntime.sleep(600)")
    kube.request("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", body=job("long", c))

    def running_pod() -> dict[str, Any] | None:
        pods = job_pods(kube, namespace, "long")
        return pods[0] if pods and pods[0]["status"].get("phase") == "Running" else None

    pod = wait_for("the Job's pod to run", running_pod)
    assert local_cluster.agent is not None
    proc = local_cluster.agent.pod_processes[pod["metadata"]["uid"]]
    assert proc.poll() is None

    kube.request("DELETE", f"/apis/batch/v1/namespaces/{namespace}/jobs/long",
                 body={"kind": "DeleteOptions", "apiVersion": "v1",
                       "propagationPolicy": "Background"})
    wait_for("the pod to be garbage-collected", lambda: not job_pods(kube, namespace, "long"))
    assert proc.poll() == -15  # SIGTERM within the grace period, as a kubelet sends


def test_rbac_denies_service_account_without_bindings(
    local_cluster: LocalCluster, kube: KubeAPI, namespace: str, tmp_path: Path
) -> None:
    kube.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts",
                 body={"apiVersion": "v1", "kind": "ServiceAccount",
                       "metadata": {"name": "nobody"}})
    sa_path = f"/api/v1/namespaces/{namespace}/serviceaccounts/nobody"
    secret = wait_for("the token secret", lambda: kube.get(sa_path).get("secrets"))[0]["name"]
    data = kube.get(f"/api/v1/namespaces/{namespace}/secrets/{secret}")["data"]
    token = base64.b64decode(data["token"]).decode()

    who = f"system:serviceaccount:{namespace}:nobody"
    denied = local_cluster.kubectl("auth", "can-i", "list", "pods", "-n", namespace,
                                   "--as", who, check=False)
    assert denied.stdout.strip() == "no"
    allowed = local_cluster.kubectl("auth", "can-i", "list", "pods", "-n", namespace)
    assert allowed.stdout.strip() == "yes"

    kubeconfig = write_kubeconfig(tmp_path / "nobody.kubeconfig", local_cluster.server,
                                  local_cluster.pki.ca_cert if local_cluster.pki else Path(),
                                  who, token)
    api = KubeAPI(kubeconfig)
    try:
        with pytest.raises(ApiException) as err:
            api.get(f"/api/v1/namespaces/{namespace}/pods")
        assert err.value.status == 403
    finally:
        api.close()


def test_force_deleting_a_running_pod_kills_its_process(
    local_cluster: LocalCluster, kube: KubeAPI, namespace: str
) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "victim"},
           "spec": {"restartPolicy": "Never", "containers": [
               container("import time\ntime.sleep(600)", gpus=0)]}}
    path = f"/api/v1/namespaces/{namespace}/pods/victim"
    kube.request("POST", f"/api/v1/namespaces/{namespace}/pods", body=pod)
    running = wait_for("the pod to run",
                       lambda: (p := kube.get(path))["status"].get("phase") == "Running" and p)
    assert local_cluster.agent is not None
    proc = local_cluster.agent.pod_processes[running["metadata"]["uid"]]

    local_cluster.kubectl("delete", "pod", "victim", "-n", namespace, "--grace-period=0",
                          "--force")
    wait_for("the process to die", lambda: proc.poll() is not None, timeout=10)
    assert proc.returncode in (-15, -9)  # killed at once (SIGTERM, then SIGKILL), as a kubelet
    with pytest.raises(ApiException) as gone:
        kube.get(path)
    assert gone.value.status == 404
