"""The operator on a real control plane: Jobs, the scheduler, the Job controller, GC, RBAC.

Trials run through the node agent: the real trainer in the end-to-end test, a
small fake trainer (a Python script) where only the control flow matters.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.operator_process import (
    apply_crd,
    experiment_manifest,
    operator,
    wait_for,
    write_manifest,
)

pytestmark = pytest.mark.cluster

FAKE_TRAINER = """
import json, os, sys, time
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
time.sleep(float(args.get("sleep", "0.5")))
lr = float(args["learning_rate"]); depth = int(args["conv1_depth"])
value = 1.0 - abs(lr - 0.003) * 50 - abs(depth - 20) / 100
out = json.dumps({"val_accuracy": value, "val_loss": 1 - value})
if args.get("termination_log", "yes") == "yes":
    with open(os.environ.get("KUBETUNE_TERMINATION_LOG", "/dev/termination-log"), "w") as f:
        f.write(out)
print("training done")
print(out)
"""


@pytest.fixture(scope="module")
def crd(local_cluster: Any) -> None:
    apply_crd(local_cluster)


@pytest.fixture
def fake_trainer(tmp_path: Path) -> list[str]:
    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER)
    return [sys.executable, str(script)]


def get_tex(kube: Any, namespace: str, name: str) -> dict[str, Any]:
    return kube.get(f"/apis/kubetune.io/v1alpha1/namespaces/{namespace}/tuningexperiments/{name}")


def jobs(kube: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    return kube.get(f"/apis/batch/v1/namespaces/{namespace}/jobs",
                    params={"labelSelector": f"kubetune.io/experiment={name}"})["items"]


def pods(kube: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    return kube.get(f"/api/v1/namespaces/{namespace}/pods",
                    params={"labelSelector": f"kubetune.io/experiment={name}"})["items"]


def phase(kube: Any, namespace: str, name: str) -> str | None:
    return (get_tex(kube, namespace, name).get("status") or {}).get("phase")


def finished(kube: Any, namespace: str, name: str) -> bool:
    return phase(kube, namespace, name) in ("Succeeded", "Failed")


def events(cluster: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "events", "-n", namespace, "-o", "json",
                          "--field-selector", f"involvedObject.name={name}")
    return json.loads(out.stdout)["items"]


@pytest.mark.e2e
@pytest.mark.slow
def test_digits_experiment_end_to_end(local_cluster, kube, namespace, crd, tmp_path):
    """kubectl apply -> the real trainer in every trial -> Succeeded -> kubectl delete -> GC."""
    trainer = str(Path(sys.executable).parent / "kubetune-trainer")
    doc = experiment_manifest(
        "digits", namespace, trials=6, parallelism=2, command=[trainer],
        args=["--dataset=digits", "--epochs=2", "--fc_units=128", "--batch_size=32"],
    )
    local_cluster.kubectl("apply", "-f", str(write_manifest(tmp_path, doc)))
    with operator(local_cluster, namespace, tmp_path / "operator.log") as op:
        def explain() -> str:
            return f"status: {get_tex(kube, namespace, 'digits').get('status')}\n{op.tail()}"

        wait_for("the experiment to finish", lambda: finished(kube, namespace, "digits"),
                 timeout=600, interval=2, explain=explain)
        status = get_tex(kube, namespace, "digits")["status"]
        assert status["phase"] == "Succeeded", explain()
        trials = status["trials"]
        assert [t["index"] for t in trials] == list(range(6))
        assert all(t["state"] == "Succeeded" for t in trials), explain()
        assert all(0.0 <= t["value"] <= 1.0 for t in trials)
        assert status["best"]["value"] == max(t["value"] for t in trials)
        assert status["best"]["value"] >= 0.5
        assert status["counts"]["succeeded"] == 6
        # cost = running time x price, per trial and in total
        for t in trials:
            assert t["cost"] == pytest.approx(t["durationSeconds"] / 3600 * 2.6, abs=1e-5)
        assert status["totalCost"] == pytest.approx(sum(t["cost"] for t in trials), abs=1e-5)
        assert status["gpuSeconds"] == pytest.approx(sum(t["durationSeconds"] for t in trials),
                                                     abs=0.01)
        made = jobs(kube, namespace, "digits")
        assert sorted(j["metadata"]["name"] for j in made) == [f"digits-{i}" for i in range(6)]
        for job in made:
            limits = job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
            assert limits == {"nvidia.com/gpu": "1"}

        table = local_cluster.kubectl("get", "tex", "-n", namespace).stdout
        header = table.splitlines()[0].split()
        assert header == ["NAME", "STATUS", "TRIALS", "BEST", "COST", "AGE"], table
        assert "Succeeded" in table and "6/6" in table
        described = local_cluster.kubectl("describe", "tex", "digits", "-n", namespace).stdout
        for reason in ("TrialCreated", "TrialSucceeded", "ExperimentSucceeded"):
            assert reason in described, described

        local_cluster.kubectl("delete", "tex", "digits", "-n", namespace, "--wait=true",
                              timeout=120)
        wait_for("Jobs and Pods to be garbage-collected",
                 lambda: not jobs(kube, namespace, "digits") and not pods(kube, namespace, "digits"),
                 timeout=120, interval=1)


def test_invalid_spec_gets_condition_and_event(local_cluster, kube, namespace, crd, tmp_path,
                                               fake_trainer):
    doc = experiment_manifest("bad", namespace, trials=2, parallelism=1, command=fake_trainer,
                              args=[])
    doc["spec"]["parameters"][1].update({"min": 40, "max": 10})
    local_cluster.kubectl("apply", "-f", str(write_manifest(tmp_path, doc)))
    with operator(local_cluster, namespace, tmp_path / "operator.log") as op:
        wait_for("the Invalid phase", lambda: phase(kube, namespace, "bad") == "Invalid",
                 timeout=60, explain=op.tail)
        status = get_tex(kube, namespace, "bad")["status"]
        valid = next(c for c in status["conditions"] if c["type"] == "Valid")
        assert valid["status"] == "False" and valid["reason"] == "InvalidSpec"
        assert "spec.parameters[1].min" in valid["message"]
        warnings = wait_for("the Warning event", lambda: [
            e for e in events(local_cluster, namespace, "bad")
            if e["type"] == "Warning" and e["reason"] == "InvalidSpec"], timeout=30)
        assert "spec.parameters[1].min" in warnings[0]["message"]
        assert jobs(kube, namespace, "bad") == []


@pytest.mark.e2e
def test_sigkill_restarts_lose_and_duplicate_nothing(local_cluster, kube, namespace, crd,
                                                     tmp_path, fake_trainer):
    """SIGKILL after a Job is created (before the status is patched), and after a status
    write; each restart continues: 6 Jobs, 6 observations, no duplicates."""
    doc = experiment_manifest("restart", namespace, trials=6, parallelism=2,
                              command=fake_trainer, args=["--sleep=1"])
    local_cluster.kubectl("apply", "-f", str(write_manifest(tmp_path, doc)))
    log = tmp_path / "operator.log"

    def recorded() -> list[int]:
        status = get_tex(kube, namespace, "restart").get("status") or {}
        return [t["index"] for t in status.get("trials", [])]

    for failpoint in ("job-created=3", "status-patched=5"):
        with operator(local_cluster, namespace, log,
                      extra_env={"KUBETUNE_FAILPOINTS": failpoint}) as op:
            code = wait_for(f"the operator to die at {failpoint}", op.proc.poll, timeout=180,
                            explain=op.tail)
            assert code == -9, op.tail()
        if failpoint.startswith("job-created"):
            # killed right after creating its third Job, before recording it
            names = sorted(j["metadata"]["name"] for j in jobs(kube, namespace, "restart"))
            assert names == ["restart-0", "restart-1", "restart-2"]
            assert recorded() == [0, 1]
    with operator(local_cluster, namespace, log) as op:
        wait_for("the experiment to finish", lambda: finished(kube, namespace, "restart"),
                 timeout=300, explain=op.tail)
        status = get_tex(kube, namespace, "restart")["status"]
        assert status["phase"] == "Succeeded", op.tail()
    trials = status["trials"]
    assert [t["index"] for t in trials] == list(range(6))
    assert all(t["state"] == "Succeeded" for t in trials)
    configs = [json.dumps(t["parameters"], sort_keys=True) for t in trials]
    assert len(set(configs)) == 6
    made = jobs(kube, namespace, "restart")
    assert sorted(j["metadata"]["name"] for j in made) == sorted(f"restart-{i}" for i in range(6))
    for job in made:  # each Job ran the configuration its trial records
        index = int(job["metadata"]["labels"]["kubetune.io/trial"])
        assert json.loads(job["metadata"]["annotations"]["kubetune.io/parameters"]) == \
            trials[index]["parameters"]
    # Events are sent after the status write that records the change: at most once per
    # trial (a kill between the write and the event loses the event, never the observation).
    succeeded_events = [e["message"].split(":")[0] for e in events(local_cluster, namespace,
                                                                   "restart")
                        if e["reason"] == "TrialSucceeded"]
    assert len(succeeded_events) == len(set(succeeded_events)) >= 4, succeeded_events


def test_job_deleted_by_hand_is_replaced(local_cluster, kube, namespace, crd, tmp_path,
                                         fake_trainer):
    doc = experiment_manifest("handdel", namespace, trials=2, parallelism=1,
                              command=fake_trainer, args=["--sleep=8"])
    local_cluster.kubectl("apply", "-f", str(write_manifest(tmp_path, doc)))
    with operator(local_cluster, namespace, tmp_path / "operator.log") as op:
        wait_for("trial 0 to run", lambda: any(
            t["state"] == "Running" for t in (get_tex(kube, namespace, "handdel").get("status")
                                              or {}).get("trials", [])), timeout=60,
                 explain=op.tail)
        local_cluster.kubectl("delete", "job", "handdel-0", "-n", namespace)
        wait_for("the experiment to finish", lambda: finished(kube, namespace, "handdel"),
                 timeout=180, explain=op.tail)
        status = get_tex(kube, namespace, "handdel")["status"]
    first = status["trials"][0]
    assert first["state"] == "Killed" and first["reason"] == "JobDeleted"
    assert status["phase"] == "Succeeded" and status["counts"]["succeeded"] == 2
    assert [t["index"] for t in status["trials"]] == [0, 1, 2]


def test_kubectl_explain_shows_descriptions(local_cluster, crd):
    out = local_cluster.kubectl("explain", "tuningexperiment.spec.parameters").stdout
    assert "search space" in out and "scale" in out and "log space" in out
    out = local_cluster.kubectl("explain", "tuningexperiment.spec.budget.maxCost").stdout
    assert "Dollars" in out


def test_result_read_from_the_log_when_no_termination_message(local_cluster, kube, namespace, crd,
                                                              tmp_path, fake_trainer):
    """No termination message: the operator reads the last JSON line of the pod's log
    (through the API server's pods/log, served by the node agent)."""
    doc = experiment_manifest("logonly", namespace, trials=1, parallelism=1,
                              command=fake_trainer, args=["--termination_log=no"])
    local_cluster.kubectl("apply", "-f", str(write_manifest(tmp_path, doc)))
    with operator(local_cluster, namespace, tmp_path / "operator.log") as op:
        wait_for("the experiment to finish", lambda: finished(kube, namespace, "logonly"),
                 timeout=120, explain=op.tail)
        trial = get_tex(kube, namespace, "logonly")["status"]["trials"][0]
    assert trial["state"] == "Succeeded", trial
    lr, depth = trial["parameters"]["learning_rate"], trial["parameters"]["conv1_depth"]
    assert trial["value"] == pytest.approx(1.0 - abs(lr - 0.003) * 50 - abs(depth - 20) / 100)
