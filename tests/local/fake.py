"""A fake trainer for ``kubetune run``: a tiny Python script, no TensorFlow.

It computes a known function of its ``--x/--k/--opt`` arguments, records every
invocation (its argv, pid, start and end time) under ``$FAKE_RECORD``, writes its
result to ``$KUBETUNE_TERMINATION_LOG`` and prints it as its last line. Switches,
all by environment or by files in the record folder so a test can flip them
between runs:

- ``$FAKE_SLEEP``: seconds every trial sleeps (default 0);
- file ``slow`` holding N: trials with index >= N start a grandchild and sleep
  120 s (to be killed by a timeout or Ctrl-C);
- ``$FAKE_NAN_TRIAL``: that trial reports NaN;
- ``$FAKE_STDOUT_ONLY_TRIAL``: that trial writes no termination log, only stdout.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

FAKE_TRAINER = r'''
import json, os, subprocess, sys, time
from pathlib import Path

record = Path(os.environ["FAKE_RECORD"])
trial = int(os.environ["KUBETUNE_TRIAL"])
args = {}
for arg in sys.argv[1:]:
    if not arg.startswith("--") or "=" not in arg:
        sys.exit(f"bad argument {arg!r}")
    name, value = arg[2:].split("=", 1)
    args[name] = value
call = record / "calls" / f"{trial}-{os.getpid()}.json"
info = {"trial": trial, "pid": os.getpid(), "argv": sys.argv[1:], "start": time.time()}
call.write_text(json.dumps(info))
sleep = float(os.environ.get("FAKE_SLEEP", "0"))
slow = record / "slow"
if slow.exists() and trial >= int(slow.read_text()):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    info["child"] = child.pid
    call.write_text(json.dumps(info))
    sleep = 120.0
time.sleep(sleep)
x, k, opt = float(args["x"]), int(args["k"]), args["opt"]
score = 1.0 - (x - 0.3) ** 2 - 0.05 * (k - 2) ** 2 + (0.1 if opt == "b" else 0.0)
if os.environ.get("FAKE_NAN_TRIAL") == str(trial):
    score = float("nan")
result = json.dumps({"score": score, "x_seen": x, "fixed": args.get("fixed")})
if os.environ.get("FAKE_STDOUT_ONLY_TRIAL") != str(trial):
    Path(os.environ["KUBETUNE_TERMINATION_LOG"]).write_text(result)
print("training...")
print(result, flush=True)
info["end"] = time.time()
call.write_text(json.dumps(info))
'''


def score(config: dict[str, Any]) -> float:
    """What the fake trainer computes for ``config``."""
    return (1.0 - (config["x"] - 0.3) ** 2 - 0.05 * (config["k"] - 2) ** 2
            + (0.1 if config["opt"] == "b" else 0.0))


@dataclass
class Fake:
    """The fake trainer's script, its record folder, and a manifest writer."""

    root: Path
    script: Path
    record: Path

    def manifest(self, name: str = "fake", *, budget: dict[str, Any] | None = None,
                 algorithm: dict[str, Any] | None = None, env: dict[str, str] | None = None,
                 x_range: tuple[float, float] = (-1.0, 1.0)) -> Path:
        env_list = [{"name": "FAKE_RECORD", "value": str(self.record)}]
        env_list += [{"name": k, "value": v} for k, v in (env or {}).items()]
        doc = {
            "apiVersion": "kubetune.io/v1alpha1",
            "kind": "TuningExperiment",
            "metadata": {"name": name},
            "spec": {
                "objective": {"metric": "score", "goal": "maximize"},
                "algorithm": algorithm or {"name": "random", "seed": 4},
                "budget": budget or {"maxTrials": 4, "parallelism": 2},
                "cost": {"pricePerHour": 3600.0},  # a dollar per second: costs are visible
                "parameters": [
                    {"name": "x", "type": "double", "min": x_range[0], "max": x_range[1]},
                    {"name": "k", "type": "int", "min": 1, "max": 5},
                    {"name": "opt", "type": "categorical", "values": ["a", "b"]},
                ],
                "trialTemplate": {"spec": {"template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{
                        "name": "trainer",
                        "image": "example.invalid/fake-trainer:1",
                        "command": [sys.executable, str(self.script)],
                        "args": ["--fixed=1"],
                        "env": env_list,
                    }],
                }}}},
            },
        }
        path = self.root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def calls(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted((self.record / "calls").glob("*.json")):
            for _ in range(50):  # a trainer may be rewriting its file this instant
                try:
                    out.append(json.loads(path.read_text()))
                    break
                except ValueError:
                    time.sleep(0.02)
        return out


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
