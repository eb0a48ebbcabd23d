"""A thin wrapper over the Kubernetes API, returning plain dicts as the API sends them.

Plain dicts (camelCase, RFC 3339 strings) keep :mod:`kubetune.controller.jobs`
free of client types, and make conflicts (409) and absences (404) explicit.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kubetune.api.spec import GROUP, PLURAL, VERSION

Obj = dict[str, Any]


class Conflict(Exception):
    """The object changed or already exists (HTTP 409)."""


def load_config(kubeconfig: str | None = None) -> client.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig."""
    configuration = client.Configuration()
    try:
        if kubeconfig:
            raise config.ConfigException("explicit kubeconfig")
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    return client.ApiClient(configuration)


def _data(response: Any) -> Obj:
    return json.loads(response.data)


class Kube:
    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.custom = client.CustomObjectsApi(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.core = client.CoreV1Api(api_client)

    # -- experiments -----------------------------------------------------------------
    def get_experiment(self, namespace: str, name: str) -> Obj | None:
        try:
            return _data(self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _preload_content=False))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def patch_status(self, namespace: str, name: str, resource_version: str, status: Obj) -> Obj:
        """Merge-patch the status subresource; 409 if the object changed since it was read."""
        body = {"metadata": {"resourceVersion": resource_version}, "status": status}
        try:
            return _data(self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, name, body, _preload_content=False))
        except ApiException as error:
            if error.status == 409:
                raise Conflict(str(error.reason)) from None
            raise

    # -- jobs and pods -------------------------------------------------------------------
    def list_jobs(self, namespace: str, label_selector: str) -> list[Obj]:
        return _data(self.batch.list_namespaced_job(
            namespace, label_selector=label_selector, _preload_content=False))["items"]

    def list_pods(self, namespace: str, label_selector: str) -> list[Obj]:
        return _data(self.core.list_namespaced_pod(
            namespace, label_selector=label_selector, _preload_content=False))["items"]

    def create_job(self, namespace: str, job: Obj) -> Obj:
        try:
            return _data(self.batch.create_namespaced_job(namespace, job, _preload_content=False))
        except ApiException as error:
            if error.status == 409:
                raise Conflict(job["metadata"]["name"]) from None
            raise

    def get_job(self, namespace: str, name: str) -> Obj | None:
        try:
            return _data(self.batch.read_namespaced_job(name, namespace, _preload_content=False))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job and (in the background) its pods; already gone is fine."""
        try:
            self.batch.delete_namespaced_job(
                name, namespace, propagation_policy="Background", _preload_content=False)
        except ApiException as error:
            if error.status != 404:
                raise

    def read_log(self, namespace: str, pod: str, container: str, tail_lines: int = 50) -> str | None:
        try:
            response = self.core.read_namespaced_pod_log(
                pod, namespace, container=container, tail_lines=tail_lines, _preload_content=False)
            return response.data.decode(errors="replace")
        except ApiException:
            return None

    def node_labels(self, name: str) -> dict[str, str]:
        try:
            node = _data(self.core.read_node(name, _preload_content=False))
        except ApiException:
            return {}
        return node.get("metadata", {}).get("labels") or {}

    # -- events ------------------------------------------------------------------------
    def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        """Record a core/v1 Event on ``obj`` (shown by ``kubectl describe``); best effort."""
        meta = obj["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:12]}",
                         "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
                "name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": "kubetune-operator"},
            "reportingComponent": "kubetune-operator",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        with contextlib.suppress(ApiException):
            self.core.create_namespaced_event(meta["namespace"], body, _preload_content=False)
