"""What a kubelet computes for one pod: its process environment and its status.

Pure functions over the pod's JSON, so they are testable without a cluster.
"""

from __future__ import annotations

import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Pod = dict[str, Any]

# The kubelet's limits (pkg/kubelet/kuberuntime): the termination-message file
# is read up to 4096 bytes; the log fallback is the last 80 lines, <= 2048 bytes.
MAX_MESSAGE_BYTES = 4096
FALLBACK_LINES = 80
FALLBACK_BYTES = 2048

FIELD_PATHS = {
    "metadata.name": lambda p: p["metadata"]["name"],
    "metadata.namespace": lambda p: p["metadata"]["namespace"],
    "metadata.uid": lambda p: p["metadata"]["uid"],
    "spec.nodeName": lambda p: p["spec"].get("nodeName", ""),
    "spec.serviceAccountName": lambda p: p["spec"].get("serviceAccountName", ""),
    "status.hostIP": lambda p: "127.0.0.1",
    "status.podIP": lambda p: "127.0.0.1",
}

_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def now() -> str:
    """RFC 3339 timestamp, second precision, as the API stores it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: known names are replaced, `$$` escapes."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _VAR_REF.sub(sub, text)


def first_container(pod: Pod) -> dict[str, Any]:
    return pod["spec"]["containers"][0]


def container_env(pod: Pod, termination_log: Path) -> dict[str, str]:
    """The process environment: a minimal host base plus the container's `env`.

    PATH starts with the directory of this interpreter so that console scripts
    of the same virtualenv (e.g. the trainer CLI) resolve as in the image.
    """
    host_path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    env: dict[str, str] = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), host_path]),
        "HOSTNAME": pod["metadata"]["name"],
    }
    for name in ("HOME", "LANG", "LC_ALL", "TMPDIR", "TZ"):
        if name in os.environ:
            env[name] = os.environ[name]
    for item in first_container(pod).get("env") or []:
        name = item["name"]
        if "valueFrom" in item:
            ref = (item["valueFrom"] or {}).get("fieldRef")
            getter = FIELD_PATHS.get((ref or {}).get("fieldPath", ""))
            if getter is None:
                continue  # secrets/configmaps/resources are not supported here
            env[name] = str(getter(pod))
        else:
            env[name] = expand(item.get("value", ""), env)
    env["KUBETUNE_TERMINATION_LOG"] = str(termination_log)
    return env


def container_argv(pod: Pod, env: dict[str, str]) -> list[str]:
    """`command + args` with `$(VAR)` expansion; no shell, as in a container."""
    c = first_container(pod)
    argv = [expand(a, env) for a in (c.get("command") or []) + (c.get("args") or [])]
    if not argv:
        raise ValueError("the node agent runs container.command/args; this container has none")
    return argv


def exit_code(returncode: int) -> int:
    """Popen's -N for "killed by signal N" becomes 128+N, as container runtimes report."""
    return 128 - returncode if returncode < 0 else returncode


def _tail(path: Path, lines: int, max_bytes: int) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    text = b"\n".join(data.rstrip(b"\n").split(b"\n")[-lines:])[-max_bytes:]
    return text.decode(errors="replace")


def termination_message(pod: Pod, term_path: Path, log_path: Path, code: int) -> str:
    """The kubelet's rule: the message file, else (FallbackToLogsOnError, failed) the log tail."""
    try:
        with open(term_path, "rb") as f:
            message = f.read(MAX_MESSAGE_BYTES).decode(errors="replace")
    except OSError:
        message = ""
    policy = first_container(pod).get("terminationMessagePolicy", "File")
    if not message and code != 0 and policy == "FallbackToLogsOnError":
        message = _tail(log_path, FALLBACK_LINES, FALLBACK_BYTES)
    return message


def _conditions(ready: bool, reason: str | None, at: str) -> list[dict[str, Any]]:
    extra = {"reason": reason} if reason else {}
    ready_s = "True" if ready else "False"
    return [
        {"type": "Initialized", "status": "True", "lastProbeTime": None,
         "lastTransitionTime": at, **extra},
        {"type": "Ready", "status": ready_s, "lastProbeTime": None,
         "lastTransitionTime": at, **extra},
        {"type": "ContainersReady", "status": ready_s, "lastProbeTime": None,
         "lastTransitionTime": at, **extra},
        {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
         "lastTransitionTime": at},
    ]


def pod_scheduled_time(pod: Pod | None) -> str | None:
    for cond in ((pod or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled":
            return cond.get("lastTransitionTime")
    return None


def _container_status(pod: Pod, state: dict[str, Any], ready: bool, cid: str) -> dict[str, Any]:
    c = first_container(pod)
    return {
        "name": c["name"],
        "image": c.get("image", ""),
        "imageID": f"kubetune-local://{c.get('image', '')}",
        "containerID": cid,
        "ready": ready,
        "started": ready,
        "restartCount": 0,
        "state": state,
        "lastState": {},
    }


def _base(pod: Pod, phase: str, start_time: str) -> dict[str, Any]:
    return {"phase": phase, "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}], "startTime": start_time}


def running_status(pod: Pod, started_at: str, cid: str) -> dict[str, Any]:
    """Pod status as a kubelet reports it once the container runs."""
    status = _base(pod, "Running", started_at)
    status["conditions"] = _with_scheduled(pod, _conditions(True, None, started_at))
    state = {"running": {"startedAt": started_at}}
    status["containerStatuses"] = [_container_status(pod, state, True, cid)]
    return {"status": status}


def terminated_status(
    pod: Pod, code: int, message: str, started_at: str, finished_at: str, cid: str,
    *, reason: str | None = None,
) -> dict[str, Any]:
    """Pod status once the container exited (no restarts: Succeeded iff exit 0)."""
    phase = "Succeeded" if code == 0 else "Failed"
    status = _base(pod, phase, started_at)
    status["conditions"] = _with_scheduled(pod, _conditions(False, "PodCompleted", finished_at))
    term: dict[str, Any] = {
        "exitCode": code,
        "reason": reason or ("Completed" if code == 0 else "Error"),
        "startedAt": started_at,
        "finishedAt": finished_at,
        "containerID": cid,
    }
    if message:
        term["message"] = message
    status["containerStatuses"] = [_container_status(pod, {"terminated": term}, False, cid)]
    return {"status": status}


def _with_scheduled(pod: Pod, conds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the scheduler's PodScheduled transition time."""
    scheduled = pod_scheduled_time(pod)
    if scheduled:
        conds[-1]["lastTransitionTime"] = scheduled
    return conds
