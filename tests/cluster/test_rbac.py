"""The chart's RBAC on the real API server of the local control plane.

The chart is installed through the Helm SDK (replicaCount 0: there is no image to
run here), then `kubetune operator` runs as a local process with exactly the
Deployment's arguments and a kubeconfig holding a token of the chart's
ServiceAccount, so the real RBAC authorizer judges every call the operator and Kopf
make. An experiment reaching Succeeded, with no "forbidden" in the operator's log,
shows the permissions suffice; `kubectl auth can-i --as=system:serviceaccount:...`
then shows they are no more than needed.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from kubetune.devcluster.cluster import write_kubeconfig
from kubetune.devcluster.kubeapi import ApiException, KubeAPI
from tests.cluster.operator_process import (
    KUBETUNE,
    apply_crd,
    experiment_manifest,
    free_port,
    stop_process_group,
    wait_for,
    write_manifest,
)
from tests.helm.chart import CHART_DIR

pytestmark = [pytest.mark.cluster, pytest.mark.e2e, pytest.mark.helm]

FAKE_TRAINER = """
import json, os, sys, time
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
time.sleep(0.3)
lr = float(args["learning_rate"]); depth = int(args["conv1_depth"])
value = 1.0 - abs(lr - 0.003) * 50 - abs(depth - 20) / 100
out = json.dumps({"val_accuracy": value})
with open(os.environ.get("KUBETUNE_TERMINATION_LOG", "/dev/termination-log"), "w") as f:
    f.write(out)
print(out)
"""
FORBIDDEN_MARKERS = ("forbidden", "403", "not enough permissions")


# ----------------------------------------------------------------------------- helpers

@dataclass
class Release:
    name: str
    namespace: str
    service_account: str
    manifest: list[dict[str, Any]]

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def deployment_args(self) -> list[str]:
        (deployment,) = [o for o in self.manifest if o["kind"] == "Deployment"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        return list(container["args"])


@contextlib.contextmanager
def scratch_namespace(kube: KubeAPI, prefix: str) -> Iterator[str]:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kube.request("POST", "/api/v1/namespaces",
                 body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    try:
        yield name
    finally:
        with contextlib.suppress(ApiException):
            kube.request("DELETE", f"/api/v1/namespaces/{name}")


@contextlib.contextmanager
def installed(cluster: Any, kube: KubeAPI, values: dict[str, Any]) -> Iterator[Release]:
    """`helm install` into a fresh namespace (as the admin); `helm uninstall` after."""
    with scratch_namespace(kube, "kubetune-system") as namespace:
        name = f"kt-{uuid.uuid4().hex[:6]}"
        # No pod: the operator runs here as a process. The CRD is the session's (the same
        # file: tests/helm checks the chart's copy), so uninstalling never removes it.
        values = {**values, "replicaCount": 0, "crds": {"install": False, "keep": True}}
        with helm.Config(kubeconfig_path=str(cluster.kubeconfig), namespace=namespace) as cfg:
            release = cfg.install(str(CHART_DIR), name, values, namespace=namespace, timeout=60)
            try:
                assert release["status"] == "deployed", release
                manifest = [d for d in yaml.safe_load_all(release["manifest"]) if d]
                (sa,) = [o["metadata"]["name"] for o in manifest if o["kind"] == "ServiceAccount"]
                yield Release(name, namespace, sa, manifest)
            finally:
                cfg.uninstall(name, timeout=60)


def service_account_kubeconfig(cluster: Any, kube: KubeAPI, release: Release,
                               path: Path) -> Path:
    """A kubeconfig authenticating with a token of the release's ServiceAccount."""
    review = kube.request(
        "POST",
        f"/api/v1/namespaces/{release.namespace}/serviceaccounts/{release.service_account}/token",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
              "spec": {"expirationSeconds": 3600}})
    return write_kubeconfig(path, cluster.server, cluster.pki.ca_cert, release.user,
                            review["status"]["token"])


class ChartOperator:
    """`kubetune <the Deployment's args>`, with local ports, as the ServiceAccount."""

    def __init__(self, release: Release, kubeconfig: Path, log_path: Path) -> None:
        self.metrics_port, self.health_port = free_port(), free_port()
        args = []
        for arg in release.deployment_args():
            if arg.startswith("--metrics-port="):
                arg = f"--metrics-port={self.metrics_port}"
            elif arg.startswith("--health-port="):
                arg = f"--health-port={self.health_port}"
            args.append(arg)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("KUBERNETES_SERVICE")}  # never in-cluster credentials
        env.update(KUBECONFIG=str(kubeconfig), PYTHONUNBUFFERED="1")
        self.log_path = log_path
        self.log = log_path.open("ab")
        self.proc = subprocess.Popen([str(KUBETUNE), *args], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def stop(self) -> None:
        stop_process_group(self.proc)
        self.log.close()

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.health_port}/healthz"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
        return False


@contextlib.contextmanager
def chart_operator(release: Release, kubeconfig: Path, log_path: Path) -> Iterator[ChartOperator]:
    process = ChartOperator(release, kubeconfig, log_path)
    try:
        yield process
    finally:
        process.stop()


def can_i(cluster: Any, release: Release, verb: str, resource: str, *,
          namespace: str | None = None, subresource: str | None = None) -> bool:
    """`kubectl auth can-i` as the admin, impersonating the release's ServiceAccount."""
    argv = ["auth", "can-i", verb, resource, f"--as={release.user}"]
    argv += ["-n", namespace] if namespace else ["--all-namespaces"]
    if subresource:
        argv.append(f"--subresource={subresource}")
    result = cluster.kubectl(*argv, check=False)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), f"can-i {argv}: {answer!r} {result.stderr}"
    return answer == "yes"


def tex(kube: KubeAPI, namespace: str, name: str) -> dict[str, Any]:
    return kube.get(f"/apis/kubetune.io/v1alpha1/namespaces/{namespace}/tuningexperiments/{name}")


def run_experiment(cluster: Any, kube: KubeAPI, op: ChartOperator, namespace: str,
                   tmp_path: Path, name: str, *, priced: bool = True,
                   jobs_deleted: bool = False) -> dict[str, Any]:
    """Apply a 3-trial experiment (fake trainer), wait for Succeeded, delete it (the
    operator, as the ServiceAccount, lets the deletion through); return its status.
    priced=False: no spec.cost.pricePerHour, so the operator's prices apply;
    jobs_deleted: finishedJobs=delete, the operator deletes every trial's Job itself."""
    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER)
    doc = experiment_manifest(name, namespace, trials=3, parallelism=2,
                              command=[sys.executable, str(script)], args=[])
    if not priced:
        del doc["spec"]["cost"]
    applied = cluster.kubectl("apply", "-f", str(write_manifest(tmp_path, doc)), check=False)
    assert applied.returncode == 0, applied.stderr

    def explain() -> str:
        return f"status: {(tex(kube, namespace, name).get('status'))}\n{op.tail()}"

    wait_for("the operator's /healthz", op.healthy, timeout=60, interval=0.5, explain=op.tail)
    wait_for("the experiment to finish",
             lambda: (tex(kube, namespace, name).get("status") or {}).get("phase")
             in ("Succeeded", "Failed"), timeout=240, interval=1, explain=explain)
    status = tex(kube, namespace, name)["status"]
    assert status["phase"] == "Succeeded", explain()
    assert [t["state"] for t in status["trials"]] == ["Succeeded"] * 3, explain()
    described = cluster.kubectl("describe", "tex", name, "-n", namespace).stdout
    assert "TrialSucceeded" in described, described  # events were created
    if jobs_deleted:  # by the ServiceAccount's `delete jobs`, not by garbage collection
        wait_for("the operator to delete the finished Jobs", lambda: not kube.get(
            f"/apis/batch/v1/namespaces/{namespace}/jobs",
            labelSelector=f"kubetune.io/experiment={name}")["items"], timeout=30,
            interval=0.5, explain=op.tail)
    # Deleting goes through whatever finalizer Kopf put on it (removed with `patch`).
    cluster.kubectl("delete", "tex", name, "-n", namespace, "--wait=true", timeout=90)
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{op.metrics_port}/metrics",
                                     timeout=5).read().decode()
    assert "kubetune_" in metrics
    assert op.proc.poll() is None, op.tail()
    time.sleep(1)  # let Kopf log anything the deletion provoked
    log = op.text().lower()
    assert not [m for m in FORBIDDEN_MARKERS if m in log], op.tail(120)
    return status


def assert_identity(cluster: Any, kubeconfig: Path, release: Release, namespace: str) -> None:
    """The kubeconfig really is the ServiceAccount (denied what the admin could do)."""
    result = subprocess.run(
        [str(cluster.binaries.kubectl), "--kubeconfig", str(kubeconfig), "get", "secrets",
         "-n", namespace], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert f'User "{release.user}" cannot list resource "secrets"' in result.stderr, result.stderr


# ------------------------------------------------------------------------------- tests

@pytest.fixture(scope="module")
def crd(local_cluster: Any) -> None:
    apply_crd(local_cluster)


def test_chart_crd_is_accepted_by_the_api_server(local_cluster: Any, tmp_path: Path) -> None:
    """The CRD as the chart renders it (labels, keep annotation) passes server-side validation."""
    with helm.Chart.load(CHART_DIR) as chart:
        rendered = chart.render({}, name="kt", namespace="kubetune-system")
    path = tmp_path / "crd.yaml"
    path.write_text(rendered["kubetune/templates/crd.yaml"])
    result = local_cluster.kubectl("apply", "--dry-run=server", "-f", str(path), check=False)
    assert result.returncode == 0, result.stderr


def test_cluster_wide_rbac_suffices_and_is_least(local_cluster, kube, namespace, crd,
                                                 tmp_path) -> None:
    node = local_cluster.node_name
    values = {"operator": {"gpuTypeLabel": "kubernetes.io/hostname", "gpuPrices": {node: 3.5},
                           "finishedJobs": "delete"}}
    with installed(local_cluster, kube, values) as release:
        assert not any(a.startswith("--namespace") for a in release.deployment_args())
        kubeconfig = service_account_kubeconfig(local_cluster, kube, release,
                                                tmp_path / "sa.kubeconfig")
        assert_identity(local_cluster, kubeconfig, release, namespace)
        with chart_operator(release, kubeconfig, tmp_path / "operator.log") as op:
            status = run_experiment(local_cluster, kube, op, namespace, tmp_path, "rbac-cw",
                                    priced=False, jobs_deleted=True)
        # The per-GPU-type price came from the node's label (`get nodes`): a denied read
        # would leave the trials unpriced, silently.
        for trial in status["trials"]:
            assert trial["pricePerHour"] == 3.5, status["trials"]
            assert trial["cost"] == pytest.approx(trial["durationSeconds"] / 3600 * 3.5, abs=1e-5)

        def yes(verb: str, resource: str, ns: str | None = namespace, sub: str | None = None
                ) -> bool:
            return can_i(local_cluster, release, verb, resource, namespace=ns, subresource=sub)

        # what the operator needs, in any namespace
        for verb in ("get", "list", "watch", "create", "delete"):
            assert yes(verb, "jobs.batch") and yes(verb, "jobs.batch", None)
        for verb in ("get", "list", "watch", "patch"):
            assert yes(verb, "tuningexperiments.kubetune.io", None)
        assert yes("patch", "tuningexperiments.kubetune.io", sub="status")
        assert yes("list", "pods", None) and yes("watch", "pods", None)
        assert yes("get", "pods", sub="log")
        assert yes("create", "events")
        assert yes("list", "customresourcedefinitions.apiextensions.k8s.io", None)
        assert yes("get", "nodes", None)  # gpuPrices set
        # ...and nothing more
        assert not yes("*", "*", None)
        for verb in ("get", "list", "watch"):
            assert not yes(verb, "secrets") and not yes(verb, "secrets", None)
            assert not yes(verb, "configmaps", None)
        assert not yes("create", "pods", sub="exec") and not yes("get", "pods", sub="exec")
        assert not yes("create", "pods", sub="attach")
        assert not yes("create", "pods") and not yes("delete", "pods")
        assert not yes("get", "pods")  # listed by label only
        assert not yes("update", "jobs.batch") and not yes("patch", "jobs.batch")
        for verb in ("create", "update", "delete", "deletecollection"):
            assert not yes(verb, "tuningexperiments.kubetune.io", None)
        assert not yes("list", "nodes", None) and not yes("patch", "nodes", None)
        assert not yes("list", "namespaces", None)  # Kopf needs them only when scoped
        assert not yes("create", "serviceaccounts", sub="token")
        assert not yes("create", "clusterrolebindings.rbac.authorization.k8s.io", None)
        assert not yes("impersonate", "serviceaccounts")
        assert not yes("create", "customresourcedefinitions.apiextensions.k8s.io", None)


def test_watch_namespaces_rbac_suffices_and_stays_inside(local_cluster, kube, namespace, crd,
                                                         tmp_path) -> None:
    with scratch_namespace(kube, "t-outside") as outside, \
            installed(local_cluster, kube, {"watchNamespaces": [namespace]}) as release:
        assert f"--namespace={namespace}" in release.deployment_args()
        roles = [o for o in release.manifest if o["kind"] == "Role"]
        assert [r["metadata"]["namespace"] for r in roles] == [namespace]
        kubeconfig = service_account_kubeconfig(local_cluster, kube, release,
                                                tmp_path / "sa.kubeconfig")
        assert_identity(local_cluster, kubeconfig, release, namespace)
        with chart_operator(release, kubeconfig, tmp_path / "operator.log") as op:
            run_experiment(local_cluster, kube, op, namespace, tmp_path, "rbac-ns")

        def yes(verb: str, resource: str, ns: str | None, sub: str | None = None) -> bool:
            return can_i(local_cluster, release, verb, resource, namespace=ns, subresource=sub)

        # inside the watched namespace: what the operator needs
        for verb in ("get", "list", "watch", "create", "delete"):
            assert yes(verb, "jobs.batch", namespace)
        assert yes("patch", "tuningexperiments.kubetune.io", namespace, "status")
        assert yes("watch", "pods", namespace) and yes("get", "pods", namespace, "log")
        assert yes("create", "events", namespace)
        # outside it (another namespace, the release's own, and cluster-wide): nothing
        for ns in (outside, release.namespace, "default", "kube-system", None):
            for verb in ("get", "list", "watch", "create", "delete"):
                assert not yes(verb, "jobs.batch", ns), (verb, ns)
                assert not yes(verb, "pods", ns), (verb, ns)
                assert not yes(verb, "tuningexperiments.kubetune.io", ns), (verb, ns)
            assert not yes("get", "pods", ns, "log")
            assert not yes("patch", "tuningexperiments.kubetune.io", ns, "status")
            assert not yes("create", "events", ns)
        # cluster-scoped: only the reads Kopf needs (CRDs, namespaces); no nodes without prices
        assert yes("watch", "customresourcedefinitions.apiextensions.k8s.io", None)
        assert yes("list", "namespaces", None) and yes("watch", "namespaces", None)
        assert not yes("get", "nodes", None)
        # and never secrets or exec, not even in the watched namespace
        assert not yes("*", "*", None) and not yes("*", "*", namespace)
        for ns in (namespace, outside, None):
            assert not yes("get", "secrets", ns) and not yes("list", "secrets", ns)
            assert not yes("create", "pods", ns, "exec")
