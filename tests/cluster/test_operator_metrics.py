"""Proof on a real Prometheus, operator edition: the dashboard's queries against the
operator's /metrics equal what the TuningExperiment's status in the cluster says.

Same experiment and expectations as tests/prometheus/test_local_run_dashboard.py,
but the trials are Jobs on the local control plane reconciled by `kubetune operator`.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.cluster.operator_process import apply_crd, operator, wait_for, write_manifest
from tests.prometheus.test_local_run_dashboard import MAX_TRIALS, NAME, NAMESPACE, expectations
from tests.prometheus.test_local_run_dashboard import manifest as dashboard_manifest
from tests.support.dashboard import load_dashboard, panel_queries
from tests.support.prometheus import http_get, prometheus_server, promtool, promtool_check_metrics

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.e2e]

__all__ = ["prometheus_server", "promtool"]  # fixtures used below


@pytest.fixture
def team_namespace(kube: Any) -> Any:
    """The namespace the shared expectations name (ml-team), deleted afterwards."""
    kube.request("POST", "/api/v1/namespaces", body={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    def token_ready() -> bool:
        try:
            return bool(kube.get(
                f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/default").get("secrets"))
        except ApiException as error:
            if error.status != 404:
                raise
            return False

    wait_for("the default service account token", token_ready, timeout=30, interval=0.2)
    try:
        yield NAMESPACE
    finally:
        kube.request("DELETE", f"/api/v1/namespaces/{NAMESPACE}")


def test_operator_metrics_match_status(local_cluster, kube, team_namespace, tmp_path,
                                       prometheus_server, promtool):
    apply_crd(local_cluster)
    doc = dashboard_manifest()
    local_cluster.kubectl("apply", "-f", str(write_manifest(tmp_path, doc)))
    path = f"/apis/kubetune.io/v1alpha1/namespaces/{NAMESPACE}/tuningexperiments/{NAME}"
    with operator(local_cluster, NAMESPACE, tmp_path / "operator.log") as op:
        prometheus = prometheus_server([f"127.0.0.1:{op.metrics_port}"])
        selector = f'namespace="{NAMESPACE}", experiment="{NAME}"'
        prometheus.wait_for(f'kubetune_experiment_info{{{selector}, phase="Succeeded"}}',
                            lambda r: len(r) == 1, timeout=300,
                            alive=lambda: op.proc.poll() is None or pytest.fail(op.tail()))
        status = kube.get(path)["status"]
        assert status["phase"] == "Succeeded", op.tail()
        assert status["counts"]["succeeded"] == MAX_TRIALS - 1
        time.sleep(2.5)  # one more scrape after the final status

        lint = promtool_check_metrics(
            promtool, http_get(f"http://127.0.0.1:{op.metrics_port}/metrics"))
        assert lint.returncode == 0 and not (lint.stdout + lint.stderr).strip(), \
            lint.stdout + lint.stderr

        expected = expectations(status)
        queries = panel_queries(load_dashboard(), {"namespace": NAMESPACE, "experiment": NAME,
                                                   "datasource": "prometheus"})
        assert {(q.panel, q.ref) for q in queries} == set(expected)
        for q in queries:
            result = prometheus.query(q.expr)
            assert result, f"{q.panel} [{q.ref}] returned no series: {q.expr}\n{op.tail()}"
            assert all(math.isfinite(float(s["value"][1])) for s in result)
            expected[(q.panel, q.ref)](result)
    # The experiment resource, not the operator's memory, holds the money: a restarted
    # operator exports the same spend.
    with operator(local_cluster, NAMESPACE, tmp_path / "operator2.log") as op:
        def exported() -> float | None:
            try:
                text = http_get(f"http://127.0.0.1:{op.metrics_port}/metrics")
            except OSError:
                return None
            for line in text.splitlines():
                if line.startswith("kubetune_experiment_cost_dollars{") and NAME in line:
                    return float(line.rsplit(" ", 1)[1])
            return None

        spent = wait_for("the restarted operator's metrics", exported, timeout=60,
                         explain=op.tail)
        assert spent == pytest.approx(status["totalCost"], abs=1e-6)
