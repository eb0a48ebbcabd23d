"""Reading a trial's outcome from what its container left behind.

Shared by the operator (termination message and pod log) and the local runner
(termination-log file and stdout), so both judge a trial the same way.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from kubetune.api.status import TrialState

MESSAGE_LIMIT = 512


@dataclass(frozen=True)
class Outcome:
    state: TrialState
    value: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str | None = None
    message: str | None = None


def last_json_object(text: str | None) -> dict[str, Any] | None:
    """The last line of ``text`` that is a JSON object (the trainer prints its result last)."""
    for line in reversed((text or "").strip().splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def _payload(termination_message: str | None, log: str | None) -> dict[str, Any] | None:
    text = (termination_message or "").strip()
    if text:
        try:
            value = json.loads(text)
            if isinstance(value, dict):
                return value
        except ValueError:
            pass
        found = last_json_object(text)
        if found is not None:
            return found
    return last_json_object(log)


def _short(text: str | None) -> str | None:
    if not text:
        return None
    text = text.strip()
    return text if len(text) <= MESSAGE_LIMIT else "..." + text[-MESSAGE_LIMIT:]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def parse_outcome(
    metric: str,
    exit_code: int | None,
    termination_message: str | None = None,
    log: str | None = None,
) -> Outcome:
    """Succeeded with the metric's value, or Failed with a reason that says why."""
    payload = _payload(termination_message, log)
    metrics = {
        k: float(v) for k, v in (payload or {}).items()
        if _number(v) is not None and math.isfinite(float(v))
    }
    if exit_code not in (0, None):
        detail = (payload or {}).get("reason") or termination_message or _tail(log)
        return Outcome(TrialState.failed, metrics=metrics, reason="Error",
                       message=_short(f"exit code {exit_code}: {detail}" if detail else
                                      f"exit code {exit_code}"))
    if payload is None:
        return Outcome(TrialState.failed, reason="NoResult", message=_short(
            "the trial wrote no JSON object to its termination message or log"))
    if metric not in payload:
        return Outcome(TrialState.failed, metrics=metrics, reason="MetricMissing", message=_short(
            f"{metric!r} not in the trial's result (keys: {', '.join(sorted(payload))})"))
    value = _number(payload[metric])
    if value is None:
        return Outcome(TrialState.failed, metrics=metrics, reason="MetricNotANumber",
                       message=_short(f"{metric}={payload[metric]!r} is not a number"))
    if not math.isfinite(value):
        return Outcome(TrialState.failed, metrics=metrics, reason="MetricNotFinite",
                       message=f"{metric} is {value}")
    return Outcome(TrialState.succeeded, value=value, metrics=metrics)


def _tail(log: str | None, lines: int = 5) -> str | None:
    if not log:
        return None
    return "\n".join(log.strip().splitlines()[-lines:])
