"""Running ``kubetune operator`` as a real process against the local control plane."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBETUNE = Path(sys.executable).parent / "kubetune"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM a process started with start_new_session, SIGKILL it after 20 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


class OperatorProcess:
    """One ``kubetune operator`` process; its log is kept for failure messages."""

    def __init__(self, env: dict[str, str], log_path: Path, namespace: str,
                 extra_args: list[str] | None = None, extra_env: dict[str, str] | None = None):
        self.log_path = log_path
        self.metrics_port = free_port()
        argv = [str(KUBETUNE), "operator", "--namespace", namespace,
                "--metrics-port", str(self.metrics_port), "--health-port", str(free_port()),
                *(extra_args or [])]
        self.log = log_path.open("ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**env, **(extra_env or {}), "PYTHONUNBUFFERED": "1"},
                                     start_new_session=True)

    def stop(self) -> None:
        stop_process_group(self.proc)
        self.log.close()

    def tail(self, lines: int = 60) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


@contextlib.contextmanager
def operator(cluster: Any, namespace: str, log_path: Path, **kwargs: Any) -> Iterator[OperatorProcess]:
    process = OperatorProcess(cluster.env(), log_path, namespace, **kwargs)
    try:
        yield process
    finally:
        process.stop()


def apply_crd(cluster: Any) -> None:
    cluster.kubectl("apply", "-f", str(ROOT / "crds"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        result = cluster.kubectl("get", "crd", "tuningexperiments.kubetune.io", "-o",
                                 "jsonpath={.status.conditions[?(@.type=='Established')].status}",
                                 check=False)
        if result.stdout.strip() == "True":
            return
        time.sleep(0.3)
    raise TimeoutError("CRD not established")


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 1.0,
             explain: Callable[[], str] = lambda: "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{explain()}")


def experiment_manifest(name: str, namespace: str, *, trials: int, parallelism: int,
                        command: list[str], args: list[str], metric: str = "val_accuracy",
                        extra_spec: dict[str, Any] | None = None,
                        parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "objective": {"metric": metric, "goal": "maximize"},
        "algorithm": {"name": "gp", "seed": 4, "initialPoints": 3},
        "budget": {"maxTrials": trials, "parallelism": parallelism, "maxFailedTrials": trials,
                   "trialTimeout": "10m"},
        "cost": {"pricePerHour": 2.6},
        "parameters": parameters or [
            {"name": "learning_rate", "type": "double", "min": 1e-4, "max": 1e-2, "scale": "log"},
            {"name": "conv1_depth", "type": "int", "min": 8, "max": 32},
            {"name": "keep_prob", "type": "double", "min": 0.5, "max": 1.0},
        ],
        "trialTemplate": {"spec": {"template": {"spec": {"containers": [{
            "name": "trainer", "image": "ghcr.io/kubetune/trainer:0.1.0",
            "command": command, "args": args,
            "resources": {"limits": {"nvidia.com/gpu": 1}},
        }]}}}},
    }
    spec.update(extra_spec or {})
    return {"apiVersion": "kubetune.io/v1alpha1", "kind": "TuningExperiment",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def write_manifest(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / f"{doc['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
