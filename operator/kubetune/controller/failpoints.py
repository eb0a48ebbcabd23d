"""Fault injection for the restart tests: SIGKILL the operator at a named point.

``KUBETUNE_FAILPOINTS="job-created=2"`` kills the process (as ``kill -9``
would) the second time it has created a Job, before it records the trial in
the status. Unset in production: :func:`hit` is then a dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

_counts: Counter[str] = Counter()


def _armed() -> dict[str, int]:
    spec = os.environ.get("KUBETUNE_FAILPOINTS", "")
    out = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, count = item.partition("=")
        out[name] = int(count or 1)
    return out


def hit(name: str) -> None:
    armed = _armed()
    if name not in armed:
        return
    _counts[name] += 1
    if _counts[name] >= armed[name]:
        os.kill(os.getpid(), signal.SIGKILL)
