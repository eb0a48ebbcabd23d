"""The seed benchmark's cost-table cells: dollars and observations must agree."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from seed_reproduction import cost_cell


def test_a_half_observation_median_is_shown_as_such() -> None:
    # Before: "$3.90 (2 obs, 2/2)": the count was rounded (half to even), the dollars not.
    assert cost_cell(1.5, 2.60, 2, 2) == "$3.90 (1.5 obs, 2/2)"
    assert cost_cell(4.5, 2.60, 2, 2) == "$11.70 (4.5 obs, 2/2)"
    assert cost_cell(17.0, 2.60, 5, 5) == "$44.20 (17 obs, 5/5)"


def test_a_level_not_reached_by_most_repeats_says_how_many_did() -> None:
    assert cost_cell(float("inf"), 2.60, 1, 5) == "not reached (1/5)"
