"""A real Prometheus for tests (marker: ``prometheus``).

:class:`PrometheusServer` runs Debian's ``prometheus`` binary on a free
loopback port with a temporary config (static scrape targets, 1 s interval)
and a temporary TSDB. The ``prometheus_server`` fixture starts as many as a
test asks for and stops them all when the test ends, pass or fail; import it
(and ``promtool``) into any conftest.py to use it there:
``from tests.support.prometheus import prometheus_server, promtool``.

Without the binaries the tests are skipped, unless CI=true or
KUBETUNE_REQUIRE_PROMETHEUS=1, where that is an error: CI must never pass by
skipping.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml


def find_binary(name: str) -> str | None:
    """``name`` on PATH, else where Debian's prometheus package puts it."""
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/bin") / name, Path("/usr/local/bin") / name) if p.exists()),
        None,
    )


def free_port() -> int:
    """A loopback port free right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


class PrometheusError(RuntimeError):
    pass


class PrometheusServer:
    """One Prometheus process scraping ``targets`` (``host:port``) every ``scrape_interval``."""

    def __init__(self, binary: str, workdir: Path, targets: Sequence[str], *,
                 scrape_interval: float = 1.0, job: str = "kubetune") -> None:
        self.binary = binary
        self.workdir = workdir
        self.targets = list(targets)
        self.scrape_interval = scrape_interval
        self.job = job
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        interval = f"{int(self.scrape_interval * 1000)}ms"
        return {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": [{
                "job_name": self.job,
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "static_configs": [{"targets": self.targets}],
            }],
        }

    def start(self, timeout: float = 60.0) -> None:
        """Start and wait for ``/-/ready``; stops the process again if it never gets ready."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config()))
        self.port = free_port()
        log = self.log_path.open("wb")
        try:
            self.process = subprocess.Popen(
                [self.binary, f"--config.file={config}",
                 f"--storage.tsdb.path={self.workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}",
                 "--storage.tsdb.retention.time=1d", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise PrometheusError(f"prometheus exited with {self.process.returncode}:\n"
                                      f"{self.log_tail()}")
            try:
                if "Ready" in http_get(f"{self.url}/-/ready", timeout=2):
                    return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise PrometheusError(f"prometheus not ready after {timeout:g}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s; idempotent."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # --------------------------------------------------------------------- HTTP API
    def api(self, path: str, **params: Any) -> Any:
        """``data`` of a GET on the HTTP API; raises with Prometheus' error message."""
        query = urllib.parse.urlencode(
            [("match[]" if k == "match" else k, v) for k, v in params.items() if v is not None])
        url = f"{self.url}/api/v1/{path}" + (f"?{query}" if query else "")
        try:
            body = json.loads(http_get(url, timeout=10))
        except urllib.error.HTTPError as error:
            body = json.loads(error.read().decode() or "{}")
        if body.get("status") != "success":
            raise PrometheusError(f"{url}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant vector query; the result is a list of {metric, value} series."""
        data = self.api("query", query=expr, time=at)
        if data["resultType"] != "vector":
            raise PrometheusError(f"{expr}: expected a vector, got {data['resultType']}")
        return data["result"]

    def query_range(self, expr: str, start: float, end: float, step: float = 1.0
                    ) -> list[dict[str, Any]]:
        return self.api("query_range", query=expr, start=start, end=end, step=step)["result"]

    def label_values(self, label: str, match: str) -> list[str]:
        return self.api(f"label/{label}/values", match=match)

    def wait_for(self, expr: str, until: Callable[[list[dict[str, Any]]], bool],
                 timeout: float = 60.0, alive: Callable[[], None] | None = None
                 ) -> list[dict[str, Any]]:
        """Poll ``expr`` until ``until(result)``; ``alive`` may raise to give up early."""
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            if alive is not None:
                alive()
            result = self.query(expr)
            if until(result):
                return result
            time.sleep(self.scrape_interval / 2)
        targets = self.api("targets")["activeTargets"]
        raise PrometheusError(f"timed out waiting for {expr}; last result {result}; targets "
                              f"{[(t['scrapeUrl'], t['health'], t['lastError']) for t in targets]}")


def histogram_quantile(q: float, bounds: Sequence[float], observations: Sequence[float]) -> float:
    """What Prometheus' histogram_quantile returns for these observations in these buckets.

    Same algorithm (linear interpolation inside the bucket holding the rank), computed
    from the raw values, so a dashboard quantile can be checked against the status.
    """
    uppers = [*sorted(bounds), math.inf]
    counts = [sum(1 for v in observations if v <= upper) for upper in uppers]
    total = counts[-1]
    if total == 0:
        return math.nan
    rank = q * total
    b = next(i for i, c in enumerate(counts) if c >= rank)
    if b == len(uppers) - 1:
        return uppers[-2]
    if b == 0 and uppers[0] <= 0:
        return uppers[0]
    start, end, count = 0.0, uppers[b], float(counts[b])
    if b > 0:
        start = uppers[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    return start + (end - start) * (rank / count)


def promtool_check_metrics(promtool: str, exposition: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, "check", "metrics"], input=exposition, text=True,
                          capture_output=True, timeout=30)


# -------------------------------------------------------------------------- fixtures
def _required() -> bool:
    return (os.environ.get("CI", "").lower() == "true"
            or os.environ.get("KUBETUNE_REQUIRE_PROMETHEUS", "") not in ("", "0"))


def require_binary(name: str) -> str:
    """Path of ``name``, else skip the test (fail it under CI)."""
    path = find_binary(name)
    if path is None:
        message = f"{name} not found (Debian package prometheus; run `make system-deps`)"
        if _required():
            pytest.fail(f"{message} [CI/KUBETUNE_REQUIRE_PROMETHEUS set, so this is an error]",
                        pytrace=False)
        pytest.skip(f"{message}; set KUBETUNE_REQUIRE_PROMETHEUS=1 to make this an error")
    return path


StartPrometheus = Callable[..., PrometheusServer]


@pytest.fixture
def promtool() -> str:
    """Path of promtool (same Debian package as prometheus)."""
    return require_binary("promtool")


@pytest.fixture
def prometheus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartPrometheus]:
    """A factory: ``prometheus_server(["127.0.0.1:PORT"], scrape_interval=1.0)`` -> started server."""
    binary = require_binary("prometheus")
    started: list[PrometheusServer] = []

    def start(targets: Sequence[str], scrape_interval: float = 1.0) -> PrometheusServer:
        workdir = Path(tmp_path_factory.mktemp("prometheus"))
        server = PrometheusServer(binary, workdir, targets, scrape_interval=scrape_interval)
        started.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in reversed(started):
            server.stop()
