"""Starting and stopping child processes so that none outlives its owner.

Each child runs in its own session (so a Ctrl-C in the terminal reaches only the
owner, which then stops children in order) and, on Linux, gets SIGTERM if the
thread that started it dies (PR_SET_PDEATHSIG), so even a SIGKILLed test
runner leaves no orphan control plane behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    argv: Sequence[str | Path],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` (no shell) with stdout and stderr appended to `log_path`.

    Note: the death signal is tied to the calling *thread*; call from a thread
    that lives as long as the child should.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [str(a) for a in argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # only a prctl() call
        )


def signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Send `sig` to the child's whole process group (its own children too)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:  # pragma: no cover - group already reused
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)


def terminate(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """SIGTERM, then SIGKILL after `timeout`; returns the exit status."""
    if proc.poll() is None:
        signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            signal_group(proc, signal.SIGKILL)
    rc = proc.wait()
    # Reap what the group left behind (e.g. a shell's children) as well.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    return rc
