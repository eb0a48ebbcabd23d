"""Fixtures for tests on the local Kubernetes control plane (marker: `cluster`).

`local_cluster` starts one real control plane + node agent per test session.
Without the cached binaries the tests are skipped, unless CI=true or
KUBETUNE_REQUIRE_CLUSTER=1, where a missing binary is an error: CI must never
pass by skipping.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import pytest

from kubetune.devcluster.cluster import Binaries, LocalCluster
from kubetune.devcluster.kubeapi import ApiException, KubeAPI


def _cluster_required() -> bool:
    return (os.environ.get("CI", "").lower() == "true"
            or os.environ.get("KUBETUNE_REQUIRE_CLUSTER", "") not in ("", "0"))


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[LocalCluster]:
    """The running LocalCluster: .kubeconfig, .api_client(), .kube(), .kubectl(), .node_name."""
    try:
        Binaries.find()
    except FileNotFoundError as e:
        if _cluster_required():
            pytest.fail(f"{e} [CI/KUBETUNE_REQUIRE_CLUSTER set, so this is an error]",
                        pytrace=False)
        pytest.skip(f"{e}; set KUBETUNE_REQUIRE_CLUSTER=1 to make this an error")
    cluster = LocalCluster(gpus=int(os.environ.get("KUBETUNE_TEST_GPUS", "4")))
    cluster.start()  # stops whatever it started if it fails
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def kube(local_cluster: LocalCluster) -> Iterator[KubeAPI]:
    """A plain-JSON admin client for the local cluster."""
    api = local_cluster.kube()
    try:
        yield api
    finally:
        api.close()
    local_cluster.check_alive()  # a crashed component fails the test that saw it


@pytest.fixture
def namespace(kube: KubeAPI) -> Iterator[str]:
    """A fresh namespace, deleted (with everything in it) after the test."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    kube.request("POST", "/api/v1/namespaces",
                 body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    try:
        # Pods are refused until the namespace's default ServiceAccount has a token.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                sa = kube.get(f"/api/v1/namespaces/{name}/serviceaccounts/default")
                if sa.get("secrets"):
                    break
            except ApiException as e:
                if e.status != 404:
                    raise
            time.sleep(0.2)
        yield name
    finally:
        try:
            kube.request("DELETE", f"/api/v1/namespaces/{name}")
        except ApiException as e:
            if e.status != 404:
                raise
