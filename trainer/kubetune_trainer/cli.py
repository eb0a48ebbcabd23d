"""``kubetune-trainer``: a thin shell over config.parse_args, data.load and train.run.

Contract with the operator: exactly one JSON object goes to the termination-message
file and is the last line of stdout; everything else (TensorFlow, Keras progress,
warnings) goes to stderr. Exit codes: 0 ok, 1 failed (data or internal error),
2 usage error, 3 NaN/inf loss.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NAN = 0, 1, 2, 3
# Kubernetes truncates termination messages beyond 4096 bytes.
_MAX_REASON = 1500


def emit(result: dict[str, Any], termination_log: str, stdout: Any) -> None:
    """Write the result to the termination log (warn if impossible) and stdout."""
    if "reason" in result:
        result["reason"] = str(result["reason"])[:_MAX_REASON]
    line = json.dumps(result, sort_keys=True, allow_nan=False)
    try:
        with open(termination_log, "w", encoding="utf-8") as fh:
            fh.write(line + "\n")
    except OSError as err:
        print(f"kubetune-trainer: warning: cannot write termination log "
              f"{termination_log}: {err}", file=sys.stderr)
    print(line, file=stdout, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Parse, load, train, report; returns the process exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = sys.argv[1:] if argv is None else list(argv)
    from kubetune_trainer import config as cfgmod

    stdout = sys.stdout
    try:
        cfg = cfgmod.parse_args(argv)
    except SystemExit as exc:
        if isinstance(exc, cfgmod.UsageError):
            emit({"status": "failed", "reason": f"usage error: {exc.message}"},
                 cfgmod.termination_log_from_argv(argv), stdout)
            return EXIT_USAGE
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE  # --help: 0

    logging.basicConfig(level=logging.INFO if cfg.verbose else logging.WARNING,
                        stream=sys.stderr, format="kubetune-trainer: %(message)s")
    from kubetune_trainer.data import DataError, load

    code = EXIT_OK
    try:
        # Keras writes progress to stdout; stdout must carry only the result line.
        with contextlib.redirect_stdout(sys.stderr):
            from kubetune_trainer.train import run

            result = run(cfg, load(cfg))
        if result["status"] != "ok":
            code = EXIT_NAN if "NaN" in result.get("reason", "") else EXIT_FAILED
    except DataError as err:
        result, code = {"status": "failed", "reason": str(err)}, EXIT_FAILED
    except Exception as err:  # report anything else too, so the trial has a reason
        logging.getLogger("kubetune_trainer").exception("training failed")
        result = {"status": "failed", "reason": f"{type(err).__name__}: {err}"}
        code = EXIT_FAILED
    emit(result, cfg.termination_log, stdout)
    return code


if __name__ == "__main__":
    sys.exit(main())
