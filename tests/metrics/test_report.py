"""``kubetune report``: from a status file and from a live resource through a kubeconfig."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune.api.status import TrialState
from kubetune.engine import summarize
from tests.support.experiments import T0, document, small_experiment, trial

PRICE = 3.6  # dollars per hour: a trial of 1000 s costs exactly $1


def finished_document() -> dict[str, Any]:
    """Completion order 1 (0.80), 0 (0.90), 2 (failed), 3 (0.85): bests at $0.40 and $1.30."""
    exp = small_experiment(max_cost=5.0, target=None, price=PRICE)
    trials = [
        trial(0, TrialState.succeeded, 0, 900, 0.9),  # $0.90, done at 900 s
        trial(1, TrialState.succeeded, 0, 400, 0.8),  # $0.40, done at 400 s
        trial(2, TrialState.failed, 400, 1000, reason="Error"),  # $0.60
        trial(3, TrialState.succeeded, 900, 1400, 0.85),  # $0.50
    ]
    exp.status = summarize(exp.spec, trials, T0.replace(hour=13))
    return document(exp)


def kubetune(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubetune.cli", "report", *args], capture_output=True, text=True,
        timeout=120, env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def check_report(out: str) -> None:
    lines = out.splitlines()
    # The trace, in order of completion, with the dollars spent so far; improvements starred.
    trace = [line for line in lines if line.strip().startswith("│") and "$" in line]
    assert any("★ 0.8000" in line and "$0.4000" in line for line in trace), out
    assert any("★ 0.9000" in line and "$1.3000" in line for line in trace), out
    assert any("failed" in line and "$1.9000" in line for line in trace), out
    assert any(" 0.8500" in line and "★ 0.85" not in line and "$2.4000" in line
               for line in trace), out
    # Dollars to first reach each best-so-far value: 0.80 at trial 1 for $0.40, 0.90 at trial 0.
    assert "dollars to first reach each best-so-far value" in out
    # Spend: total $2.40, median trial $0.55, GPU-hours 2 x 2400 s, remaining $2.60.
    for text in ("$2.4000", "$0.5500", "1.3333", "$2.6000", "$5.0000", "$3.6000"):
        assert text in out, (text, out)


def row(out: str, *cells: str) -> bool:
    """A table row holding all ``cells`` in this order."""
    for line in out.splitlines():
        parts = [p.strip() for p in line.split("│") if p.strip()]
        if parts[:len(cells)] == list(cells):
            return True
    return False


def test_report_on_a_status_file(tmp_path: Path) -> None:
    path = tmp_path / "status.yaml"
    path.write_text(yaml.safe_dump(finished_document()))
    png = tmp_path / "trace.png"
    result = kubetune(str(path), "--levels", "0.85", "0.95", "--png", str(png))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    check_report(out)
    assert row(out, "0.8000", "1", "1", "$0.4000"), out  # best, at trial, completed #, dollars
    assert row(out, "0.9000", "0", "2", "$1.3000"), out
    assert row(out, ">= 0.85", "0", "2", "$1.3000"), out  # first reached with 0.90
    assert row(out, ">= 0.95", "not reached"), out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_errors_name_the_source(tmp_path: Path) -> None:
    missing = kubetune(str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    bad = kubetune(str(broken))
    assert bad.returncode == 2 and "not a valid TuningExperiment" in bad.stderr


class _FakeAPI(http.server.BaseHTTPRequestHandler):
    """Answers GET for one TuningExperiment, 404 for everything else."""

    objects: dict[str, dict[str, Any]] = {}
    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = self.objects.get(self.path.split("?")[0])
        status = 200 if body is not None else 404
        payload = body if body is not None else {
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
            "code": 404, "message": "not found"}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fake_cluster(tmp_path: Path) -> Iterator[tuple[Path, type[_FakeAPI]]]:
    """A kubeconfig pointing at a loopback HTTP server that serves TuningExperiments."""
    handler = type("Handler", (_FakeAPI,), {"objects": {}, "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {
            "server": f"http://127.0.0.1:{server.server_address[1]}"}}],
        "users": [{"name": "fake", "user": {"token": "test"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
    }))
    try:
        yield kubeconfig, handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_report_on_a_live_resource(fake_cluster: tuple[Path, type[_FakeAPI]]) -> None:
    kubeconfig, handler = fake_cluster
    doc = finished_document()
    doc["metadata"]["namespace"] = "ml"
    path = "/apis/kubetune.io/v1alpha1/namespaces/ml/tuningexperiments/exp"
    handler.objects[path] = doc
    result = kubetune("exp", "-n", "ml", env={"KUBECONFIG": str(kubeconfig)})
    assert result.returncode == 0, result.stderr
    assert handler.seen == [path]
    assert "ml/exp" in result.stdout
    check_report(result.stdout)

    absent = kubetune("other", "-n", "ml", env={"KUBECONFIG": str(kubeconfig)})
    assert absent.returncode == 2
    assert "no TuningExperiment ml/other" in absent.stderr
