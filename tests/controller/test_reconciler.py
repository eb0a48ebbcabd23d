"""The reconciler's restart and conflict rules, against an in-memory API."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubetune.controller import failpoints
from kubetune.controller.jobs import ANNOTATION_PARAMETERS, LABEL_EXPERIMENT, LABEL_TRIAL, build_job
from kubetune.controller.reconciler import OperatorConfig, Reconciler, parse_gpu_prices


def experiment(**budget: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "TuningExperiment",
        "metadata": {"name": "exp"},
        "spec": {
            "objective": {"metric": "acc", "goal": "maximize"},
            "algorithm": {"name": "random", "seed": 3},
            "budget": {"maxTrials": 4, "parallelism": 2, **budget},
            "cost": {"pricePerHour": 2.6},
            "parameters": [{"name": "lr", "type": "double", "min": 1e-4, "max": 1, "scale": "log"},
                           {"name": "units", "type": "int", "min": 8, "max": 64}],
            "trialTemplate": {"spec": {"template": {"spec": {"containers": [{
                "name": "trainer", "image": "kubetune/trainer", "command": ["kubetune-trainer"],
                "args": ["--dataset=digits"],
                "resources": {"limits": {"nvidia.com/gpu": 1}}}]}}}},
        },
    }


def status(kube: Any) -> dict[str, Any]:
    return kube.experiments[("default", "exp")]["status"]


def finish_all(kube: Any, value: float = 0.9) -> None:
    for (_, name), job in list(kube.jobs.items()):
        if not job.get("status"):
            kube.finish_job(name, message=json.dumps({"acc": value}))


def test_jobs_carry_parameters_gpus_and_owner(fake_kube):
    fake_kube.add_experiment(experiment())
    Reconciler(fake_kube).reconcile("default", "exp")
    assert sorted(n for _, n in fake_kube.jobs) == ["exp-0", "exp-1"]
    job = fake_kube.jobs[("default", "exp-0")]
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-exp"
    assert job["metadata"]["labels"] == {LABEL_EXPERIMENT: "exp", LABEL_TRIAL: "0"}
    params = json.loads(job["metadata"]["annotations"][ANNOTATION_PARAMETERS])
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][0] == "--dataset=digits"
    assert container["args"][1:] == [f"--lr={params['lr']!r}", f"--units={params['units']}"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["KUBETUNE_EXPERIMENT"] == "exp" and env["KUBETUNE_TRIAL"] == "0"
    assert [t["index"] for t in status(fake_kube)["trials"]] == [0, 1]


def test_trial_timeout_becomes_active_deadline(fake_kube):
    fake_kube.add_experiment(experiment(trialTimeout="1h30m"))
    Reconciler(fake_kube).reconcile("default", "exp")
    assert fake_kube.jobs[("default", "exp-0")]["spec"]["activeDeadlineSeconds"] == 5400


def test_runs_to_the_end_with_costs(fake_kube):
    fake_kube.add_experiment(experiment())
    reconciler = Reconciler(fake_kube)
    for _ in range(6):
        reconciler.reconcile("default", "exp")
        finish_all(fake_kube)
    st = status(fake_kube)
    assert st["phase"] == "Succeeded"
    assert st["counts"]["succeeded"] == 4 and len(fake_kube.jobs) == 4
    # each fake trial ran 30 minutes at $2.60/h
    assert st["totalCost"] == pytest.approx(4 * 1.3)
    assert st["gpuSeconds"] == pytest.approx(4 * 1800)
    reasons = [r for _, r, _ in fake_kube.events]
    assert reasons.count("TrialSucceeded") == 4 and "ExperimentSucceeded" in reasons


def test_crash_after_job_created_adopts_instead_of_duplicating(fake_kube, monkeypatch):
    """SIGKILL between 'Job created' and 'status patched' loses and duplicates nothing."""
    fake_kube.add_experiment(experiment())
    killed = []
    monkeypatch.setenv("KUBETUNE_FAILPOINTS", "job-created=1")
    monkeypatch.setattr(failpoints.os, "kill", lambda pid, sig: (_ for _ in ()).throw(
        SystemExit("killed")) if not killed.append(sig) else None)
    with pytest.raises(SystemExit):
        Reconciler(fake_kube).reconcile("default", "exp")
    assert list(fake_kube.jobs) == [("default", "exp-0")]
    assert "status" not in fake_kube.experiments[("default", "exp")]
    created = json.loads(fake_kube.jobs[("default", "exp-0")]["metadata"]["annotations"][
        ANNOTATION_PARAMETERS])
    monkeypatch.delenv("KUBETUNE_FAILPOINTS")
    reconciler = Reconciler(fake_kube)  # a fresh operator process
    for _ in range(6):
        reconciler.reconcile("default", "exp")
        finish_all(fake_kube)
    trials = status(fake_kube)["trials"]
    assert [t["index"] for t in trials] == [0, 1, 2, 3]
    assert trials[0]["parameters"] == created
    assert fake_kube.creates == 4


def test_conflict_on_create_adopts_existing_job(fake_kube):
    doc = fake_kube.add_experiment(experiment())
    from kubetune.api import Trial, load_experiment

    spec = load_experiment(doc).spec
    theirs = build_job("exp", "default", "uid-exp", spec,
                       Trial(index=0, parameters={"lr": 0.5, "units": 9}, state="Pending"))
    fake_kube.jobs[("default", "exp-0")] = theirs  # created, but invisible to the list below
    real_list = fake_kube.list_jobs
    fake_kube.list_jobs = lambda ns, sel: []
    Reconciler(fake_kube).reconcile("default", "exp")
    fake_kube.list_jobs = real_list
    trials = status(fake_kube)["trials"]
    assert trials[0]["parameters"] == {"lr": 0.5, "units": 9}


def test_stale_status_write_is_retried_not_lost(fake_kube):
    fake_kube.add_experiment(experiment())
    real_get = fake_kube.get_experiment

    def stale(ns, name):
        obj = real_get(ns, name)
        obj["metadata"]["resourceVersion"] = "0"
        return obj

    fake_kube.get_experiment = stale
    result = Reconciler(fake_kube).reconcile("default", "exp")
    assert result.active and "status" not in fake_kube.experiments[("default", "exp")]
    fake_kube.get_experiment = real_get
    Reconciler(fake_kube).reconcile("default", "exp")
    assert [t["index"] for t in status(fake_kube)["trials"]] == [0, 1]
    assert fake_kube.creates == 2


def test_invalid_spec_condition_event_and_nothing_launched(fake_kube):
    doc = experiment()
    doc["spec"]["parameters"][1]["min"] = 100
    fake_kube.add_experiment(doc)
    Reconciler(fake_kube).reconcile("default", "exp")
    Reconciler(fake_kube).reconcile("default", "exp")
    assert fake_kube.jobs == {}
    st = status(fake_kube)
    valid = next(c for c in st["conditions"] if c["type"] == "Valid")
    assert st["phase"] == "Invalid" and valid["status"] == "False"
    assert valid["reason"] == "InvalidSpec" and "spec.parameters[1].min" in valid["message"]
    warnings = [e for e in fake_kube.events if e[1] == "InvalidSpec"]
    assert len(warnings) == 1 and warnings[0][0] == "Warning"
    assert "spec.parameters[1].min" in warnings[0][2]


def test_job_deleted_by_hand_is_killed_and_replaced(fake_kube):
    fake_kube.add_experiment(experiment(maxTrials=2, parallelism=1))
    reconciler = Reconciler(fake_kube)
    reconciler.reconcile("default", "exp")
    fake_kube.delete_job("default", "exp-0")
    reconciler.reconcile("default", "exp")
    trials = status(fake_kube)["trials"]
    assert trials[0]["state"] == "Killed" and trials[0]["reason"] == "JobDeleted"
    assert [t["index"] for t in trials] == [0, 1]
    for _ in range(4):
        finish_all(fake_kube)
        reconciler.reconcile("default", "exp")
    st = status(fake_kube)
    assert st["phase"] == "Succeeded" and st["counts"]["succeeded"] == 2


def test_target_reached_kills_running_trials(fake_kube):
    doc = experiment(parallelism=2)
    doc["spec"]["objective"]["target"] = 0.95
    fake_kube.add_experiment(doc)
    reconciler = Reconciler(fake_kube)
    reconciler.reconcile("default", "exp")
    fake_kube.finish_job("exp-0", message=json.dumps({"acc": 0.99}))
    reconciler.reconcile("default", "exp")
    st = status(fake_kube)
    assert st["phase"] == "Succeeded"
    assert next(c for c in st["conditions"] if c["type"] == "Succeeded")["reason"] == "TargetReached"
    assert ("default", "exp-1") not in fake_kube.jobs
    assert st["trials"][1]["state"] == "Killed"


def test_log_fallback_and_nan_metric(fake_kube):
    fake_kube.add_experiment(experiment(maxFailedTrials=5))
    reconciler = Reconciler(fake_kube)
    reconciler.reconcile("default", "exp")
    fake_kube.finish_job("exp-0", message="")
    fake_kube.logs["exp-0-pod"] = 'noise\n{"acc": 0.7}\n'
    fake_kube.finish_job("exp-1", message='{"acc": NaN}')
    reconciler.reconcile("default", "exp")
    trials = status(fake_kube)["trials"]
    assert trials[0]["state"] == "Succeeded" and trials[0]["value"] == 0.7
    assert trials[1]["state"] == "Failed" and trials[1]["reason"] == "MetricNotFinite"


def test_finished_jobs_deleted_only_after_result_recorded(fake_kube):
    fake_kube.add_experiment(experiment(maxTrials=1, parallelism=1))
    reconciler = Reconciler(fake_kube, OperatorConfig(finished_jobs="delete"))
    reconciler.reconcile("default", "exp")
    fake_kube.finish_job("exp-0", message=json.dumps({"acc": 0.8}))
    reconciler.reconcile("default", "exp")  # records the result; the Job is still there
    assert ("default", "exp-0") in fake_kube.jobs
    assert status(fake_kube)["trials"][0]["value"] == 0.8
    reconciler.reconcile("default", "exp")
    assert ("default", "exp-0") not in fake_kube.jobs
    assert status(fake_kube)["trials"][0]["value"] == 0.8


def test_gpu_prices_parse():
    assert parse_gpu_prices("a=1.5, b=2") == {"a": 1.5, "b": 2.0}
    with pytest.raises(ValueError, match="TYPE=PRICE"):
        parse_gpu_prices("oops")


def test_per_gpu_type_price_from_node_label(fake_kube):
    doc = experiment(maxTrials=1, parallelism=1)
    del doc["spec"]["cost"]
    fake_kube.add_experiment(doc)
    fake_kube.node_labels = lambda name: {"nvidia.com/gpu.product": "Tesla-T4"} \
        if name == "gpu-node" else {}
    reconciler = Reconciler(fake_kube, OperatorConfig(default_price=1.0,
                                                      gpu_prices={"Tesla-T4": 0.36}))
    reconciler.reconcile("default", "exp")
    fake_kube.finish_job("exp-0", message=json.dumps({"acc": 0.8}))
    fake_kube.pods[("default", "exp-0-pod")]["spec"] = {"nodeName": "gpu-node"}
    reconciler.reconcile("default", "exp")
    trial = status(fake_kube)["trials"][0]
    assert trial["pricePerHour"] == 0.36
    assert trial["cost"] == pytest.approx(0.5 * 0.36)  # 30 minutes on a T4


def test_delete_policy_asks_for_a_prompt_pass_after_recording_results(fake_kube):
    """The pass that records a result must not leave the Job waiting for the idle interval."""
    fake_kube.add_experiment(experiment(maxTrials=1, parallelism=1))
    reconciler = Reconciler(fake_kube, OperatorConfig(finished_jobs="delete"))
    reconciler.reconcile("default", "exp")
    fake_kube.finish_job("exp-0", message=json.dumps({"acc": 0.8}))
    result = reconciler.reconcile("default", "exp")  # records the result, experiment finished
    assert result.finished and result.active
    assert ("default", "exp-0") in fake_kube.jobs
    result = reconciler.reconcile("default", "exp")
    assert ("default", "exp-0") not in fake_kube.jobs and not result.active
