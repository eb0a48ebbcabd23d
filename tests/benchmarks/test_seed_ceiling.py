"""benchmarks/seed_ceiling.py: the prescient-oracle odds, on small saved runs built here."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "seed_ceiling.py"
EVALS, INITIAL = 10, 2


def _trial(lr: float, acc: float | None, i: int) -> dict[str, object]:
    config = {"learning_rate": lr, "momentum": 0.5 + i / 100}
    if acc is None:
        return {"config": config, "status": "failed", "val_accuracy": None}
    return {"config": config, "status": "ok", "val_accuracy": acc}


def _saved(tmp_path: Path, in_band: float | None) -> Path:
    """Random search: off-band trainings at 0.3 and one 0.9 at the end; gp: in-band ones."""
    runs = []
    for repeat in range(3):
        first = [_trial(0.5, 0.1, 0), _trial(0.5, 0.2, 1)]
        rnd = [_trial(0.1, 0.3, i) for i in range(2, EVALS - 1)] + [_trial(0.2, 0.9, 99)]
        gp = [_trial(5e-4, in_band, i) for i in range(2, EVALS)]
        runs.append({"method": "random", "repeat": repeat, "trials": first + rnd})
        runs.append({"method": "gp", "repeat": repeat, "trials": first + gp})
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"args": {"evals": str(EVALS), "initial_points": str(INITIAL)},
                                "runs": runs}))
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def _odds(out: str) -> tuple[int, int, int]:
    m = re.search(r"'every budget' (\d+)%, 'within 20' (\d+)%, both (\d+)%", out)
    assert m, out
    return int(m[1]), int(m[2]), int(m[3])


def test_an_oracle_drawing_good_trainings_meets_both_targets(tmp_path: Path) -> None:
    proc = _run("--saved", str(_saved(tmp_path, 0.95)), "--draws", "50")
    assert proc.returncode == 0, proc.stderr
    assert "repeat 0: 8 trainings in the band, median accuracy 0.9500" in proc.stdout
    assert _odds(proc.stdout) == (100, 100, 100)
    # The first draw after the 2 initial trainings already beats random's end (0.9).
    assert "random's final median 3" in proc.stdout
    assert "this run's gp: every budget met, reaches random's final median (0.9000) at 3" \
        in proc.stdout


def test_an_oracle_whose_band_holds_only_poor_or_failed_trainings_meets_neither(
        tmp_path: Path) -> None:
    for in_band in (0.25, None):  # a failed training counts as 0, as in the report
        proc = _run("--saved", str(_saved(tmp_path, in_band)), "--draws", "50")
        assert proc.returncode == 0, proc.stderr
        assert _odds(proc.stdout) == (0, 0, 0)  # below random at evaluation 10
        assert "median evaluation reaching random's final median inf" in proc.stdout


def test_the_band_selects_the_pool(tmp_path: Path) -> None:
    proc = _run("--saved", str(_saved(tmp_path, 0.95)), "--band", "1e-3,1e-2", "--draws", "5")
    assert proc.returncode == 0, proc.stderr
    assert "repeat 0: no training in the band" in proc.stdout
    assert _odds(proc.stdout) == (0, 0, 0)


@pytest.mark.parametrize(("args", "message"), [
    (["--band", "3e-3"], "--band 3e-3: expected two numbers LO,HI"),
    (["--band", "1e-2,1e-3"], "--band 1e-2,1e-3: needs 0 < LO < HI"),
    (["--draws", "0"], "--draws 0: must be at least 1"),
    (["--saved", "/no/such.json"], "--saved /no/such.json: no such file"),
])
def test_bad_options_name_the_option_and_the_reason(tmp_path: Path, args: list[str],
                                                    message: str) -> None:
    proc = _run("--saved", str(_saved(tmp_path, 0.95)), *args)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_the_committed_run_is_read(tmp_path: Path) -> None:
    proc = _run("--draws", "20")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"5 repeats x 80 evaluations, 6 initial", proc.stdout)
    assert re.search(r"this run's gp: every budget not met, reaches random's final median "
                     r"\(0\.9792\) at 25", proc.stdout)


@pytest.mark.parametrize(("text", "message"), [
    ("nope", "not JSON"),
    ('{"runs": []}', "args.evals: missing or invalid (KeyError"),
    ('{"args": {"evals": "80"}, "runs": [{"method": "tpe", "repeat": 0, "trials": []}]}',
     "runs[0].method/repeat: missing or invalid (ValueError: unknown method 'tpe')"),
    ('{"args": {"evals": "80"}, "runs": [{"method": "gp", "repeat": 0, '
     '"trials": [{"config": {}, "status": "ok"}]}]}',
     "runs[0].trials[0].config.learning_rate/status: missing or invalid (KeyError"),
])
@pytest.mark.parametrize("script", ["seed_ceiling.py", "seed_surrogate.py"])
def test_a_saved_file_that_is_not_a_seed_run_names_the_field(
        tmp_path: Path, script: str, text: str, message: str) -> None:
    # Before: a traceback (KeyError/JSONDecodeError), in the surrogate from every worker.
    path = tmp_path / "other.json"
    path.write_text(text)
    proc = subprocess.run([sys.executable, str(SCRIPT.parent / script), "--saved", str(path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert f"--saved {path}: {message}" in proc.stderr
    assert "Traceback" not in proc.stderr
