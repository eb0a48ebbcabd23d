"""The node agent's kubelet rules, without a cluster (env, argv, messages, status)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from kubetune.devcluster import podrun


def pod(**container: Any) -> dict[str, Any]:
    c = {"name": "trial", "image": "img", "command": ["python"], **container}
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u-1"},
            "spec": {"nodeName": "n", "containers": [c]}}


def test_env_has_literals_field_refs_path_and_termination_log(tmp_path: Path) -> None:
    p = pod(env=[{"name": "A", "value": "x"}, {"name": "B", "value": "$(A)-$$(A)"},
                 {"name": "U", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                 {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                 {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}])
    env = podrun.container_env(p, tmp_path / "term")
    assert env["A"] == "x" and env["B"] == "x-$(A)"
    assert env["U"] == "u-1" and env["N"] == "n" and "S" not in env
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert env["KUBETUNE_TERMINATION_LOG"] == str(tmp_path / "term")


def test_argv_is_command_plus_args_without_shell() -> None:
    p = pod(command=["kubetune-trainer"], args=["--lr", "$(LR)", "a b"])
    assert podrun.container_argv(p, {"LR": "0.1"}) == ["kubetune-trainer", "--lr", "0.1", "a b"]
    with pytest.raises(ValueError):
        podrun.container_argv(pod(command=[]), {})


def test_termination_message_file_then_log_fallback(tmp_path: Path) -> None:
    term, log = tmp_path / "term", tmp_path / "log"
    log.write_text("".join(f"line {i}\n" for i in range(200)))
    fallback = pod(terminationMessagePolicy="FallbackToLogsOnError")
    assert podrun.termination_message(pod(), term, log, 1) == ""
    tail = podrun.termination_message(fallback, term, log, 1)
    assert tail.splitlines()[-1] == "line 199" and len(tail.splitlines()) == 80
    assert podrun.termination_message(fallback, term, log, 0) == ""
    term.write_bytes(b"x" * 10_000)
    assert len(podrun.termination_message(fallback, term, log, 1)) == 4096


def test_statuses_look_like_a_kubelets() -> None:
    running = podrun.running_status(pod(), "2024-01-01T00:00:00Z", "cid")["status"]
    assert running["phase"] == "Running"
    assert running["containerStatuses"][0]["state"]["running"]["startedAt"]
    assert {c["type"] for c in running["conditions"]} == {
        "Initialized", "Ready", "ContainersReady", "PodScheduled"}
    done = podrun.terminated_status(pod(), 0, "{}", "t0", "t1", "cid")["status"]
    assert done["phase"] == "Succeeded"
    assert done["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    failed = podrun.terminated_status(pod(), podrun.exit_code(-9), "", "t0", "t1", "c")
    term = failed["status"]["containerStatuses"][0]["state"]["terminated"]
    assert failed["status"]["phase"] == "Failed" and term["exitCode"] == 137
    assert "message" not in term
