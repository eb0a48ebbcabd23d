"""A stand-in for the trainer in tests: no TensorFlow, fixed running time, known outcome.

Run as a script (the trial container's command). Takes the trial's
``--name=value`` parameters plus three of its own: ``--sleep=SECONDS`` (how
long the "training" runs), ``--fail_trials=2,5`` (trial indices, from
KUBETUNE_TRIAL, that exit with an error) and ``--best_trial=1`` (that trial
reports 0.995, above anything else, so a test knows where the best is). The
objective is otherwise a deterministic function of the parameters.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time


def objective(params: dict[str, str]) -> float:
    """A smooth value in (0.5, 0.99) of the numeric parameters."""
    total = 0.0
    for key, raw in sorted(params.items()):
        try:
            number = float(raw)
        except ValueError:
            number = float(len(raw))
        total += math.log1p(abs(number)) * (1 + len(key) % 3)
    return round(0.5 + 0.49 * math.sin(total) ** 2, 6)


def main(argv: list[str]) -> int:
    params = dict(arg[2:].split("=", 1) for arg in argv if arg.startswith("--") and "=" in arg)
    sleep = float(params.pop("sleep", "1"))
    fail = {int(i) for i in params.pop("fail_trials", "").split(",") if i}
    best = params.pop("best_trial", None)
    trial = int(os.environ.get("KUBETUNE_TRIAL", "0"))
    print(f"fake trainer: trial {trial} {params}", flush=True)
    time.sleep(sleep)
    if trial in fail:
        print(f"fake trainer: trial {trial} fails on purpose", file=sys.stderr, flush=True)
        return 3
    value = 0.995 if best is not None and int(best) == trial else objective(params)
    result = json.dumps({"val_accuracy": value, "val_loss": round(1 - value, 6)})
    path = os.environ.get("KUBETUNE_TERMINATION_LOG")
    if path:
        with open(path, "w") as out:
            out.write(result)
    print(result, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
