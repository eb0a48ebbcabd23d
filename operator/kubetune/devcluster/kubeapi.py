"""A tiny JSON client for the Kubernetes API, configured by the official client.

Why not the generated typed API: the node agent must send strategic-merge
patches to pods/status and read raw watch streams, and the generated client
changed how it picks patch content types and (de)serializes models between its
major versions. The official client still loads the kubeconfig (token, CA,
client certs); requests are plain JSON over urllib3, as a kubelet speaks.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

__all__ = ["ApiException", "KubeAPI"]

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"


class KubeAPI:
    """JSON requests against one API server, authenticated as in a kubeconfig."""

    def __init__(self, kubeconfig: str | Path, *, user_agent: str = "kubetune-devcluster") -> None:
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        self.host = cfg.host.rstrip("/")
        self._headers = {"Accept": JSON, "User-Agent": user_agent}
        for setting in cfg.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                self._headers[setting["key"]] = setting["value"]
        self._pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=8,
            cert_reqs="CERT_REQUIRED" if cfg.verify_ssl else "CERT_NONE",
            ca_certs=cfg.ssl_ca_cert,
            cert_file=cfg.cert_file,
            key_file=cfg.key_file,
        )
        self._streams: set[urllib3.BaseHTTPResponse] = set()

    def _url(self, path: str, query: dict[str, Any] | None) -> str:
        q = {k: v for k, v in (query or {}).items() if v is not None}
        return self.host + path + (("?" + urlencode(q)) if q else "")

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = JSON,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """One request; returns the decoded JSON body, raises ApiException on non-2xx."""
        headers = dict(self._headers)
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        resp = self._pool.request(
            method, self._url(path, query), body=data, headers=headers,
            timeout=urllib3.Timeout(connect=5.0, read=timeout), retries=False,
        )
        if not 200 <= resp.status <= 299:
            raise _error(resp.status, resp.reason, resp.data)
        return json.loads(resp.data) if resp.data else {}

    def get(self, path: str, params: dict[str, Any] | None = None, **query: Any) -> dict[str, Any]:
        """GET with query parameters given as `params` and/or keywords."""
        return self.request("GET", path, query={**(params or {}), **query})

    def watch(self, path: str, *, read_timeout: float, **query: Any) -> Iterator[dict[str, Any]]:
        """Yield watch events ({type, object}) until the server ends the stream.

        `close_streams()` from another thread ends a blocked watch at once.
        """
        query["watch"] = "true"
        resp = self._pool.request(
            "GET", self._url(path, query), headers=self._headers, preload_content=False,
            timeout=urllib3.Timeout(connect=5.0, read=read_timeout), retries=False,
        )
        self._streams.add(resp)
        try:
            if not 200 <= resp.status <= 299:
                raise _error(resp.status, resp.reason, resp.read())
            buf = b""
            for chunk in resp.stream(amt=None, decode_content=True):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            self._streams.discard(resp)
            resp.release_conn()
            resp.close()

    def close_streams(self) -> None:
        """Interrupt every watch in progress (used on shutdown)."""
        for resp in list(self._streams):
            conn = getattr(resp, "connection", None) or getattr(resp, "_connection", None)
            sock = getattr(conn, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.close_streams()
        self._pool.clear()


def _error(status: int, reason: str | None, body: bytes) -> ApiException:
    """An ApiException carrying the server's Status message, as the typed client raises."""
    exc = ApiException(status=status, reason=reason or "")
    exc.body = body.decode(errors="replace")
    return exc
