"""CI check of benchmarks/seed_reproduction.py: the --quick preset end to end.

Real TensorFlow training in worker processes (a few minutes on 2 cores), so marked slow.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_seed_reproduction_quick_writes_sane_outputs(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "seed_reproduction.py"), "--quick",
         "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]

    png = (tmp_path / "seed_reproduction-quick.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000

    data = json.loads((tmp_path / "seed_reproduction-quick.json").read_text())
    evals = int(data["args"]["evals"])
    repeats = int(data["args"]["repeats"])
    runs = data["runs"]
    assert sorted((r["method"], r["repeat"]) for r in runs) == sorted(
        (m, r) for m in ("gp", "random") for r in range(repeats))
    for run in runs:
        assert len(run["trials"]) == evals
        ok = [t for t in run["trials"] if t["status"] == "ok"]
        assert ok, "every trial of a run failed"
        for t in ok:
            assert 0.0 <= t["val_accuracy"] <= 1.0
            assert 0.0 <= t["test_accuracy"] <= 1.0
        keys = [json.dumps(t["config"], sort_keys=True) for t in run["trials"]]
        assert len(set(keys)) == len(keys), "a configuration was trained twice in one run"

    summary = data["summary"]
    for method in ("gp", "random"):
        curve = summary["median_best_seen"][method]
        assert len(curve) == evals
        assert all(b >= a for a, b in itertools.pairwise(curve))  # best-seen
        assert 0.1 < curve[-1] <= 1.0
        assert all(0.0 <= x <= 1.0 for x in summary[f"test_{method}"])
    assert len(summary["test_untuned"]) == repeats
    assert len(summary["test_random_forest"]) == repeats
    assert all(0.7 < x <= 1.0 for x in summary["test_random_forest"])  # RF on digits

    md = (tmp_path / "seed_reproduction-quick.md").read_text()
    for heading in ("Median best-seen", "Held-out test accuracy", "Cost to first reach",
                    "RandomForestClassifier", "untuned CNN"):
        assert heading in md
    assert "$" in md
