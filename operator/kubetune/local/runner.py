"""``kubetune run``: the same manifest, trials as local processes.

A thin shell around the engine: observe the processes, ask :func:`engine.plan`
what to do, do it, write the status. The status file is the whole record,
so a second run of the same command resumes where the first one stopped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from kubetune.api.manifest import Experiment
from kubetune.api.spec import API_VERSION, KIND
from kubetune.api.status import ExperimentStatus, Trial, TrialState
from kubetune.engine import FinishReason, plan, summarize
from kubetune.results import parse_outcome
from kubetune.space import SearchSpace
from kubetune.trials import trial_argv, trial_env

STATUS_FILE = "status.yaml"
KILL_GRACE_SECONDS = 5.0


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Process:
    """A running trial."""

    trial: int
    popen: subprocess.Popen[bytes]
    log_path: Path
    termination_path: Path
    deadline: float | None


class ResumeError(RuntimeError):
    """The recorded trials do not fit the manifest any more."""


class LocalRunner:
    """Runs one experiment to its end on this machine."""

    def __init__(
        self,
        experiment: Experiment,
        workdir: Path,
        *,
        poll_seconds: float = 0.5,
        on_event: Callable[[str, Trial | None, ExperimentStatus], None] | None = None,
        on_status: Callable[[ExperimentStatus], None] | None = None,
        on_suggestion: Callable[[float], None] | None = None,
    ) -> None:
        self.experiment = experiment
        self.spec = experiment.spec
        self.workdir = workdir
        self.poll_seconds = poll_seconds
        self.on_event = on_event or (lambda kind, trial, status: None)
        self.on_status = on_status or (lambda status: None)
        self.on_suggestion = on_suggestion or (lambda seconds: None)
        self.processes: dict[int, Process] = {}
        self.trials: dict[int, Trial] = {}
        self.status = ExperimentStatus()

    # -------------------------------------------------------------------- record
    @property
    def status_path(self) -> Path:
        return self.workdir / STATUS_FILE

    def document(self) -> dict[str, Any]:
        """The experiment as ``kubectl get tex -o yaml`` would show it."""
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": self.experiment.name, "namespace": self.experiment.namespace},
            "spec": self.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
            "status": self.status.model_dump(mode="json", by_alias=True, exclude_none=True),
        }

    def save(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        tmp = self.status_path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(self.document(), sort_keys=False))
        os.replace(tmp, self.status_path)

    def resume(self) -> int:
        """Load an earlier run's trials; returns how many completed (succeeded or failed) were kept.

        Trials that were still running when that run stopped are recorded as
        Killed (their processes are gone): they are not counted against
        maxTrials and their configurations are not issued again.
        """
        if not self.status_path.exists():
            return 0
        doc = yaml.safe_load(self.status_path.read_text()) or {}
        from kubetune.api.manifest import parse_status

        previous = parse_status(doc.get("status"))
        space = SearchSpace(self.spec.parameters)
        now = utcnow()
        for trial in previous.trials:
            if not space.contains(trial.parameters):
                raise ResumeError(
                    f"trial {trial.index} in {self.status_path} ({trial.parameters}) is outside "
                    "the manifest's search space; use a new metadata.name or --fresh"
                )
            if TrialState(trial.state).active:
                trial = trial.model_copy(update={
                    "state": TrialState.killed, "reason": "Interrupted",
                    "message": "the previous kubetune run stopped while this trial ran",
                    "finish_time": trial.finish_time or trial.start_time or now,
                })
            self.trials[trial.index] = trial
        self.status = previous
        return sum(1 for t in self.trials.values()
                   if t.state in (TrialState.succeeded, TrialState.failed))

    # ------------------------------------------------------------------ processes
    def _env(self, index: int, termination_path: Path) -> dict[str, str]:
        env = dict(os.environ)
        bindir = str(Path(sys.executable).parent)
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        for item in self.spec.trial_template.container.get("env") or []:
            if "value" in item:
                env[item["name"]] = str(item["value"])
        env.update(trial_env(self.experiment.name, self.experiment.namespace, index))
        env["KUBETUNE_TERMINATION_LOG"] = str(termination_path)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _launch(self, trial: Trial) -> Trial:
        folder = self.workdir / "trials" / str(trial.index)
        folder.mkdir(parents=True, exist_ok=True)
        log_path = folder / "log.txt"
        termination_path = folder / "termination-log"
        termination_path.unlink(missing_ok=True)
        argv = trial_argv(self.spec, trial.parameters)
        if not argv or not self.spec.trial_template.container.get("command"):
            raise ValueError(
                "spec.trialTemplate.spec.template.spec.containers[0].command: required to run "
                "trials locally (the image's entrypoint is unknown here)"
            )
        (folder / "command.txt").write_text(" ".join(argv) + "\n")
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self._env(trial.index, termination_path), start_new_session=True,
            )
        timeout = self.spec.budget.trial_timeout_seconds
        self.processes[trial.index] = Process(
            trial.index, popen, log_path, termination_path,
            time.monotonic() + timeout if timeout else None,
        )
        return trial.model_copy(update={"state": TrialState.running, "start_time": utcnow()})

    def _stop(self, process: Process) -> None:
        """SIGTERM the trial's process group, SIGKILL it after a grace period."""
        if process.popen.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, KILL_GRACE_SECONDS), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.popen.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.popen.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def _collect(self, process: Process, code: int, timed_out: bool) -> Trial:
        trial = self.trials[process.trial]
        now = utcnow()
        if timed_out:
            return trial.model_copy(update={
                "state": TrialState.failed, "reason": "DeadlineExceeded", "finish_time": now,
                "message": f"ran longer than trialTimeout ({self.spec.budget.trial_timeout})",
            })
        message = process.termination_path.read_text(errors="replace") \
            if process.termination_path.exists() else None
        log = process.log_path.read_text(errors="replace") if process.log_path.exists() else None
        outcome = parse_outcome(self.spec.objective.metric, code, message, log)
        return trial.model_copy(update={
            "state": outcome.state, "value": outcome.value, "metrics": outcome.metrics or None,
            "reason": outcome.reason, "message": outcome.message, "finish_time": now,
        })

    def _poll(self) -> list[Trial]:
        finished = []
        for index, process in list(self.processes.items()):
            code = process.popen.poll()
            timed_out = False
            if code is None and process.deadline is not None and time.monotonic() > process.deadline:
                self._stop(process)
                code, timed_out = process.popen.wait(), True
            if code is None:
                continue
            del self.processes[index]
            trial = self._collect(process, code, timed_out)
            self.trials[index] = trial
            finished.append(trial)
        return finished

    def kill_all(self, reason: str, message: str) -> None:
        for index, process in list(self.processes.items()):
            self._stop(process)
            del self.processes[index]
            self.trials[index] = self.trials[index].model_copy(update={
                "state": TrialState.killed, "reason": reason, "message": message,
                "finish_time": utcnow(),
            })

    # ---------------------------------------------------------------------- loop
    def _refresh(self, finished: FinishReason | None = None, message: str = "") -> None:
        self.status = summarize(
            self.spec, list(self.trials.values()), utcnow(), previous=self.status,
            generation=self.experiment.generation, finished=finished, message=message,
        )
        self.save()
        self.on_status(self.status)

    def done(self) -> bool:
        return self.status.phase in ("Succeeded", "Failed")

    def step(self) -> bool:
        """One pass; returns False once the experiment has finished."""
        for trial in self._poll():
            self._refresh()
            self.on_event("finished", trial, self.status)
        started = time.monotonic()
        decision = plan(self.spec, list(self.trials.values()), utcnow())
        if decision.launch:  # plan() called the suggester: report how long that took
            self.on_suggestion(time.monotonic() - started)
        if decision.finished is not None:
            for index in decision.kill:
                process = self.processes.pop(index, None)
                if process is not None:
                    self._stop(process)
                self.trials[index] = self.trials[index].model_copy(update={
                    "state": TrialState.killed, "reason": decision.finished.value,
                    "message": "the experiment finished while this trial ran",
                    "finish_time": utcnow(),
                })
            self._refresh(decision.finished, decision.message)
            self.on_event("experiment", None, self.status)
            return False
        for trial in decision.launch:
            self.trials[trial.index] = trial
            trial = self._launch(trial)
            self.trials[trial.index] = trial
            self._refresh()
            self.on_event("started", trial, self.status)
        return True

    def run(self) -> ExperimentStatus:
        """Run to the end; Ctrl-C kills the trials, records them as Killed and re-raises."""
        self._refresh()
        if self.done():
            return self.status
        try:
            while self.step():
                time.sleep(self.poll_seconds)
        except BaseException:
            self.kill_all("Interrupted", "kubetune run was interrupted")
            self._refresh()
            raise
        return self.status
