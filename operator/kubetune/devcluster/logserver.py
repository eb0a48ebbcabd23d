"""The kubelet's container-log endpoint, so `kubectl logs` works on agent pods.

The API server proxies `pods/log` to `https://<node InternalIP>:<kubelet port>
/containerLogs/{namespace}/{pod}/{container}`; this serves exactly that path
from the agent's local log files.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

# (namespace, pod, container) -> (log file, "is the process still running?")
Resolver = Callable[[str, str, str], tuple[Path, Callable[[], bool]] | None]


def _tail_bytes(data: bytes, lines: int) -> bytes:
    if lines <= 0:
        return b""
    parts = data.split(b"\n")
    if parts and parts[-1] == b"":
        parts = parts[:-1]
        return b"\n".join(parts[-lines:]) + b"\n"
    return b"\n".join(parts[-lines:])


class _Handler(BaseHTTPRequestHandler):
    server: LogServer

    def log_message(self, format: str, *args: object) -> None:
        pass  # the API server's own logs record every request

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/healthz":
            self._send(200, b"ok")
            return
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if len(parts) != 4 or parts[0] != "containerLogs":
            self._send(404, b"not found")
            return
        found = self.server.resolve(parts[1], parts[2], parts[3])
        if found is None:
            self._send(404, f"container {parts[3]!r} of pod {parts[1]}/{parts[2]} "
                            "not found on this node".encode())
            return
        path, running = found
        query = parse_qs(url.query)
        try:
            data = path.read_bytes()
        except OSError:
            data = b""
        if "tailLines" in query:
            data = _tail_bytes(data, int(query["tailLines"][0]))
        if "limitBytes" in query:
            data = data[: int(query["limitBytes"][0])]
        follow = query.get("follow", ["false"])[0] == "true"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        if not follow:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if follow:
            self._follow(path, path.stat().st_size if path.exists() else 0, running)

    def _follow(self, path: Path, offset: int, running: Callable[[], bool]) -> None:
        """Stream what the process appends until it exits (kubectl logs -f)."""
        with contextlib.suppress(OSError), open(path, "rb") as f:
            f.seek(offset)
            while True:
                alive = running()
                chunk = f.read()
                if chunk:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                elif not alive or self.server.stopping.is_set():
                    return
                else:
                    time.sleep(0.2)

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class LogServer(ThreadingHTTPServer):
    """HTTPS on 127.0.0.1; requires a client cert signed by `client_ca` when given."""

    daemon_threads = True

    def __init__(
        self, resolve: Resolver, cert: Path, key: Path, client_ca: Path | None, port: int = 0
    ) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.resolve = resolve
        self.stopping = threading.Event()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        if client_ca is not None:
            ctx.load_verify_locations(str(client_ca))
            ctx.verify_mode = ssl.CERT_REQUIRED
        self.socket = ctx.wrap_socket(self.socket, server_side=True)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.2},
            name="kubetune-log-server", daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join(5)
        self.server_close()
