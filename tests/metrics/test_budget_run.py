"""End to end: ``kubetune run`` on the digits search space stops launching at budget.maxCost."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.experiments import digits_manifest, fake_trainer_container

pytestmark = pytest.mark.e2e

SLEEP = 2.0  # a fake trial runs 2.0 s + process start + poll: ~2.2 s, so ~$2.2 each
PRICE = 3600.0  # one dollar per running second
# Between 3 and 4 trials' price. After trial 0 (d0 <= 2.6 s) the estimate allows two more;
# after three trials (>= $6) no fourth fits, as every trial costs more than $2.
MAX_COST = 7.8


def test_budget_stops_launching_and_says_why(tmp_path: Path) -> None:
    doc = digits_manifest("digits-budget", fake_trainer_container(f"--sleep={SLEEP}"))
    doc["spec"]["budget"].pop("trialTimeout")  # the estimate comes from finished trials
    doc["spec"]["budget"]["maxCost"] = MAX_COST
    doc["spec"]["cost"]["pricePerHour"] = PRICE
    manifest = tmp_path / "digits-budget.yaml"
    manifest.write_text(yaml.safe_dump(doc))
    workdir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "kubetune.cli", "run", str(manifest), "--workdir", str(workdir),
         "--poll", "0.1"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    status = yaml.safe_load((workdir / "status.yaml").read_text())["status"]

    # Stopped by the budget, well before maxTrials (16), and the status says so.
    conditions = {c["type"]: c for c in status["conditions"]}
    assert status["phase"] == "Succeeded"
    assert conditions["Succeeded"]["status"] == "True"
    assert conditions["Succeeded"]["reason"] == "BudgetExhausted"
    assert conditions["Running"]["status"] == "False"
    assert conditions["Running"]["reason"] == "BudgetExhausted"
    assert "maxCost" in conditions["Succeeded"]["message"]
    assert "BudgetExhausted" in result.stdout

    # Three trials ran to the end; none was launched and then killed for money.
    assert status["counts"]["total"] == 3, status["trials"]
    assert status["counts"]["succeeded"] == 3
    costs = [t["cost"] for t in status["trials"]]
    assert status["totalCost"] == pytest.approx(sum(costs), abs=1e-5)
    # Within budget, and (by the documented rule) no room for one more median-cost trial.
    assert status["totalCost"] <= MAX_COST
    assert status["totalCost"] + statistics.median(costs) > MAX_COST
    assert status["remainingBudget"] == pytest.approx(MAX_COST - status["totalCost"], abs=1e-5)

    # And `kubetune report` prices each best-so-far value of that run.
    report = subprocess.run(
        [sys.executable, "-m", "kubetune.cli", "report", str(workdir / "status.yaml")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"},
    )
    assert report.returncode == 0, report.stderr
    assert "BudgetExhausted" in report.stdout
    finished = sorted(status["trials"], key=lambda t: t["finishTime"])
    best, spent = None, 0.0
    for trial in finished:
        spent += trial["cost"]
        if best is None or trial["value"] > best:
            best = trial["value"]
            assert any(f"{best:.4f}" in line and str(trial["index"]) in line
                       and f"${spent:.4f}" in line for line in report.stdout.splitlines()), (
                best, spent, report.stdout)
