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


class ApiError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, status: int, reason: str, body: str = "") -> None:
        super().__init__(f"{status} {reason}: {body[:300]}")
        self.status = status
        self.reason = reason


class Kube:
    """Raw JSON requests through the official client's connection and auth handling.

    The typed client validates request bodies against its own models (it
    rejects ``nvidia.com/gpu: 1`` as "not a string", although the API server
    accepts int-or-string quantities), so objects go to the server as written.
    """

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client

    def request(self, method: str, path: str, body: Any = None,
                query: list[tuple[str, str]] | None = None,
                content_type: str = "application/json") -> Obj:
        data = self.request_bytes(method, path, body, query, content_type)
        return json.loads(data) if data else {}

    def request_bytes(self, method: str, path: str, body: Any = None,
                      query: list[tuple[str, str]] | None = None,
                      content_type: str = "application/json") -> bytes:
        headers = {"Accept": "application/json, */*"}
        if body is not None:
            headers["Content-Type"] = content_type
        _, url, headers, payload, _ = self.api_client.param_serialize(
            method=method, resource_path=path, query_params=query or [], header_params=headers,
            body=body, auth_settings=["BearerToken"])
        try:
            response = self.api_client.call_api(method, url, header_params=headers, body=payload,
                                                _request_timeout=60)
            response.read()
        except ApiException as error:
            raise ApiError(error.status or 0, str(error.reason), str(error.body or "")) from None
        if response.status >= 400:
            raise ApiError(response.status, str(response.reason), response.data.decode(errors="replace"))
        return response.data or b""

    def _get_or_none(self, path: str) -> Obj | None:
        try:
            return self.request("GET", path)
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    # -- experiments -----------------------------------------------------------------
    @staticmethod
    def _experiment_path(namespace: str, name: str) -> str:
        return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"

    def get_experiment(self, namespace: str, name: str) -> Obj | None:
        return self._get_or_none(self._experiment_path(namespace, name))

    def patch_status(self, namespace: str, name: str, resource_version: str, status: Obj) -> Obj:
        """Merge-patch the status subresource; 409 if the object changed since it was read."""
        body = {"metadata": {"resourceVersion": resource_version}, "status": status}
        try:
            return self.request("PATCH", self._experiment_path(namespace, name) + "/status", body,
                                content_type="application/merge-patch+json")
        except ApiError as error:
            if error.status == 409:
                raise Conflict(name) from None
            raise

    # -- jobs and pods -------------------------------------------------------------------
    def list_jobs(self, namespace: str, label_selector: str) -> list[Obj]:
        return self.request("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs",
                            query=[("labelSelector", label_selector)])["items"]

    def list_pods(self, namespace: str, label_selector: str) -> list[Obj]:
        return self.request("GET", f"/api/v1/namespaces/{namespace}/pods",
                            query=[("labelSelector", label_selector)])["items"]

    def create_job(self, namespace: str, job: Obj) -> Obj:
        try:
            return self.request("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", job)
        except ApiError as error:
            if error.status == 409:
                raise Conflict(job["metadata"]["name"]) from None
            raise

    def get_job(self, namespace: str, name: str) -> Obj | None:
        return self._get_or_none(f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}")

    def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job and (in the background) its pods; already gone is fine."""
        try:
            self.request("DELETE", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}",
                         {"propagationPolicy": "Background"})
        except ApiError as error:
            if error.status != 404:
                raise

    def read_log(self, namespace: str, pod: str, container: str, tail_lines: int = 50) -> str | None:
        try:
            return self.request_bytes(
                "GET", f"/api/v1/namespaces/{namespace}/pods/{pod}/log",
                query=[("container", container), ("tailLines", str(tail_lines))],
            ).decode(errors="replace")
        except ApiError:
            return None

    def node_labels(self, name: str) -> dict[str, str]:
        try:
            node = self.request("GET", f"/api/v1/nodes/{name}")
        except ApiError:
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
        with contextlib.suppress(ApiError):
            self.request("POST", f"/api/v1/namespaces/{meta['namespace']}/events", body)
