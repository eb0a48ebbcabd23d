"""``kubetune run``: trials as local processes, parallelism, timeouts, NaN, Ctrl-C and resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune.api import ExperimentStatus, Parameter, TrialState, parse_status
from kubetune.cli import main
from kubetune.space import SearchSpace
from kubetune.trials import format_value

from .fake import Fake, score, wait_for

POLL = "0.05"


def run(manifest: Path, workdir: Path, *extra: str) -> int:
    return main(["run", str(manifest), "--workdir", str(workdir), "--poll", POLL, *extra])


def read_status(workdir: Path) -> ExperimentStatus:
    doc = yaml.safe_load((workdir / "status.yaml").read_text())
    return parse_status(doc["status"])


def flat(text: str) -> str:
    """Console output with rich's line wrapping undone."""
    return " ".join(text.split())


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its parent is not)."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return False
        return state not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def calls_by_trial(fake: Fake) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for call in fake.calls():
        out.setdefault(call["trial"], []).append(call)
    return out


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    best = current = 0
    for _, step in events:  # at equal times the end (-1) sorts first
        current += step
        best = max(best, current)
    return best


# --------------------------------------------------------------------------- a full run
def test_run_to_the_end(fake: Fake, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = fake.manifest(
        algorithm={"name": "gp", "seed": 3, "initialPoints": 2},
        budget={"maxTrials": 5, "parallelism": 2},
        env={"FAKE_STDOUT_ONLY_TRIAL": "1"},  # trial 1's result is read from its log
    )
    workdir = tmp_path / "work"
    assert run(manifest, workdir) == 0
    out = flat(capsys.readouterr().out)

    doc = yaml.safe_load((workdir / "status.yaml").read_text())
    assert doc["apiVersion"] == "kubetune.io/v1alpha1"
    assert doc["kind"] == "TuningExperiment"
    assert doc["metadata"]["name"] == "fake"
    status = parse_status(doc["status"])
    assert status.phase == "Succeeded"
    done = status.condition("Succeeded")
    assert done is not None and done.reason == "MaxTrialsReached"
    assert [t.index for t in status.trials] == [0, 1, 2, 3, 4]
    assert all(t.state == TrialState.succeeded for t in status.trials)
    assert status.progress == "5/5"

    space = SearchSpace([Parameter.model_validate(p) for p in doc["spec"]["parameters"]])
    assert len({space.key(t.parameters) for t in status.trials}) == 5
    for t in status.trials:
        assert space.contains(t.parameters)
        assert t.value == pytest.approx(score(t.parameters), abs=1e-12)
        assert t.metrics is not None and t.metrics["x_seen"] == t.parameters["x"]
        # $3600 per hour: a trial costs its running seconds in dollars
        assert t.duration_seconds is not None and t.duration_seconds > 0
        assert t.cost == pytest.approx(t.duration_seconds, abs=1e-3)  # both rounded
    assert status.total_cost == pytest.approx(sum(t.cost or 0 for t in status.trials), abs=1e-5)
    best = max(status.trials, key=lambda t: t.value or -1e9)
    assert status.best is not None
    assert (status.best.trial, status.best.value) == (best.index, best.value)

    # each trial's argv carried the template args, then --name=value per parameter
    calls = calls_by_trial(fake)
    assert sorted(calls) == [0, 1, 2, 3, 4]
    for t in status.trials:
        [call] = calls[t.index]
        p = t.parameters
        assert call["argv"] == ["--fixed=1", f"--x={format_value(p['x'])}", f"--k={p['k']}",
                                f"--opt={p['opt']}"]
        assert float(call["argv"][1].split("=", 1)[1]) == p["x"]  # no precision lost
        assert "training..." in (workdir / "trials" / str(t.index) / "log.txt").read_text()

    png = workdir / "best-trace.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "best-seen trace" in out
    assert f"{best.value:.4f}" in out  # the table shows the best value


def test_parallelism_is_honoured(fake: Fake, tmp_path: Path) -> None:
    manifest = fake.manifest(budget={"maxTrials": 6, "parallelism": 3},
                             env={"FAKE_SLEEP": "2"})
    assert run(manifest, tmp_path / "work") == 0
    calls = fake.calls()
    assert len(calls) == 6
    assert max_overlap([(c["start"], c["end"]) for c in calls]) == 3


def test_trial_timeout_kills_the_trial(fake: Fake, tmp_path: Path) -> None:
    (fake.record / "slow").write_text("0")
    manifest = fake.manifest(budget={"maxTrials": 1, "parallelism": 1, "trialTimeout": 2})
    workdir = tmp_path / "work"
    run(manifest, workdir)
    [t] = read_status(workdir).trials
    assert t.state == TrialState.failed
    assert t.reason == "DeadlineExceeded"
    assert "trialTimeout" in (t.message or "")
    assert t.duration_seconds is not None and 2 <= t.duration_seconds < 60
    [call] = fake.calls()
    assert not alive(call["pid"])
    assert not alive(call["child"])  # the whole process group went


def test_nan_trial_fails_and_the_experiment_continues(fake: Fake, tmp_path: Path) -> None:
    manifest = fake.manifest(budget={"maxTrials": 4, "parallelism": 2},
                             env={"FAKE_NAN_TRIAL": "1"})
    workdir = tmp_path / "work"
    assert run(manifest, workdir) == 0
    status = read_status(workdir)
    states = {t.index: t.state for t in status.trials}
    assert states == {0: TrialState.succeeded, 1: TrialState.failed, 2: TrialState.succeeded,
                      3: TrialState.succeeded}
    nan_trial = status.trials[1]
    assert nan_trial.reason == "MetricNotFinite"
    assert nan_trial.value is None
    assert (status.counts.succeeded, status.counts.failed) == (3, 1)
    assert status.best is not None and status.best.trial != 1
    assert (workdir / "best-trace.png").exists()


def test_too_many_failures_fail_the_experiment(fake: Fake, tmp_path: Path) -> None:
    manifest = fake.manifest(budget={"maxTrials": 3, "parallelism": 1, "maxFailedTrials": 0},
                             env={"FAKE_NAN_TRIAL": "0"})
    workdir = tmp_path / "work"
    assert run(manifest, workdir) == 1
    status = read_status(workdir)
    assert status.phase == "Failed"
    failed = status.condition("Failed")
    assert failed is not None and failed.reason == "MaxFailedTrialsReached"
    assert len(status.trials) == 1


# ---------------------------------------------------------------------- Ctrl-C and resume
def test_ctrl_c_then_resume_without_repeating_finished_trials(
    fake: Fake, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (fake.record / "slow").write_text("2")  # trials 0 and 1 finish, 2 and 3 hang
    manifest = fake.manifest(budget={"maxTrials": 6, "parallelism": 2})
    workdir = tmp_path / "work"
    log = tmp_path / "first-run.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "kubetune.cli", "run", str(manifest), "--workdir",
             str(workdir), "--poll", POLL],
            stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        def hanging() -> bool:
            calls = calls_by_trial(fake)
            return all(i in calls and "child" in calls[i][0] for i in (2, 3)) and \
                (workdir / "status.yaml").exists() and \
                read_status(workdir).counts.running == 2
        wait_for(hanging, 90, "trials 0 and 1 to finish and 2 and 3 to run")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 130, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "interrupted" in log.read_text()

    status = read_status(workdir)
    assert {t.index: t.state for t in status.trials} == {
        0: TrialState.succeeded, 1: TrialState.succeeded,
        2: TrialState.killed, 3: TrialState.killed,
    }
    assert all(t.reason == "Interrupted" for t in status.trials[2:])
    assert status.progress == "2/6"
    first = fake.calls()
    assert len(first) == 4
    for call in first:  # no trial process, nor anything it started, is left running
        assert not alive(call["pid"]), call
        if "child" in call:
            assert not alive(call["child"]), call

    # the same command again: finished trials are kept, killed ones are not counted
    (fake.record / "slow").unlink()
    capsys.readouterr()
    assert run(manifest, workdir) == 0
    assert "2 completed trials kept" in flat(capsys.readouterr().out)
    resumed = read_status(workdir)
    assert resumed.phase == "Succeeded"
    assert resumed.trials[:2] == status.trials[:2]  # untouched: same config, value, times
    assert [t.state for t in resumed.trials[2:4]] == [TrialState.killed] * 2
    assert [t.index for t in resumed.trials] == [0, 1, 2, 3, 4, 5, 6, 7]
    assert resumed.counts.succeeded + resumed.counts.failed == 6
    calls = calls_by_trial(fake)
    assert {i: len(c) for i, c in calls.items()} == {i: 1 for i in range(8)}
    assert len(fake.calls()) == 6 + 2  # maxTrials + the two killed
    space = SearchSpace([Parameter.model_validate(p) for p in yaml.safe_load(
        manifest.read_text())["spec"]["parameters"]])
    assert len({space.key(t.parameters) for t in resumed.trials}) == 8  # nothing re-issued

    # running a finished experiment again starts nothing
    assert run(manifest, workdir) == 0
    assert len(fake.calls()) == 8

    # --fresh discards the record
    assert run(manifest, workdir, "--fresh") == 0
    fresh = read_status(workdir)
    assert [t.index for t in fresh.trials] == [0, 1, 2, 3, 4, 5]
    assert all(t.state == TrialState.succeeded for t in fresh.trials)
    assert len(fake.calls()) == 8 + 6


def test_resume_with_a_search_space_that_excludes_old_trials(
    fake: Fake, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir = tmp_path / "work"
    assert run(fake.manifest(budget={"maxTrials": 2, "parallelism": 2}), workdir) == 0
    changed = fake.manifest(budget={"maxTrials": 2, "parallelism": 2}, x_range=(5.0, 6.0))
    capsys.readouterr()
    assert run(changed, workdir) == 2
    out = flat(capsys.readouterr().out)
    assert "outside the manifest's search space" in out
    assert "--fresh" in out
    assert len(fake.calls()) == 2  # nothing was run
    assert run(changed, workdir, "--fresh") == 0
    assert all(5.0 <= t.parameters["x"] <= 6.0 for t in read_status(workdir).trials)
