"""The ``kubetune`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from kubetune.api.errors import InvalidSpec
from kubetune.api.manifest import Experiment, load_experiment

# Piped or logged output (CI, `| tee`) would otherwise wrap tables at 80 columns.
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
console = Console(width=_WIDTH)
err_console = Console(stderr=True, width=_WIDTH)


def read_manifest(path: Path) -> Experiment:
    """The one TuningExperiment in ``path``; exits 2 naming every bad field."""
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except (OSError, yaml.YAMLError) as error:
        err_console.print(f"[red]error:[/] cannot read {path}: {error}")
        raise SystemExit(2) from None
    if len(docs) != 1:
        err_console.print(f"[red]error:[/] {path} must hold exactly one TuningExperiment "
                          f"(found {len(docs)} documents)")
        raise SystemExit(2)
    try:
        return load_experiment(docs[0])
    except InvalidSpec as error:
        err_console.print(f"[red]error:[/] {path} is not a valid TuningExperiment:")
        for problem in error.problems:
            err_console.print(f"  [bold]{problem.field}[/]: {problem.reason}")
        raise SystemExit(2) from None


def cmd_validate(args: argparse.Namespace) -> int:
    experiment = read_manifest(args.file)
    console.print(f"[green]ok[/]: {experiment.name} ({len(experiment.spec.parameters)} "
                  f"parameters, {experiment.spec.budget.max_trials} trials)")
    return 0


def cmd_crd(args: argparse.Namespace) -> int:
    from kubetune.crd import crd_yaml

    text = crd_yaml()
    if args.check:
        current = args.check.read_text() if args.check.exists() else ""
        if current != text:
            err_console.print(f"[red]{args.check} is out of date[/]: run `make crd`")
            return 1
        console.print(f"[green]{args.check} matches the models[/]")
        return 0
    sys.stdout.write(text)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from kubetune.local.cli import run_local

    experiment = read_manifest(args.file)
    return run_local(experiment, args, console)


def cmd_report(args: argparse.Namespace) -> int:
    from kubetune.report import report

    return report(args, console)


def cmd_operator(args: argparse.Namespace) -> int:
    from kubetune.controller.main import run_operator

    return run_operator(args)


def cmd_dev_cluster(args: argparse.Namespace) -> int:
    from kubetune.devcluster import cli as devcluster_cli

    return devcluster_cli(args.rest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubetune",
        description="Kubernetes-native Bayesian hyperparameter tuning with dollar-cost tracking.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a TuningExperiment manifest on this machine")
    run.add_argument("file", type=Path, help="TuningExperiment YAML")
    run.add_argument("--workdir", type=Path, default=None,
                     help="where status, logs and plots go (default: runs/<metadata.name>)")
    run.add_argument("--fresh", action="store_true",
                     help="discard an earlier run's status instead of resuming it")
    run.add_argument("--metrics-port", type=int, default=None,
                     help="serve Prometheus metrics on this port while running")
    run.add_argument("--metrics-linger", type=float, default=0.0, metavar="SECONDS",
                     help="keep serving metrics this long after the experiment ends, so that "
                     "Prometheus scrapes the final state (Ctrl-C ends it early)")
    run.add_argument("--poll", type=float, default=0.5, help=argparse.SUPPRESS)
    run.set_defaults(func=cmd_run)

    validate = sub.add_parser("validate", help="check a manifest and name every bad field")
    validate.add_argument("file", type=Path)
    validate.set_defaults(func=cmd_validate)

    crd = sub.add_parser("crd", help="print the CustomResourceDefinition generated from the API")
    crd.add_argument("--check", type=Path, default=None,
                     help="compare with this file instead of printing; exit 1 if it differs")
    crd.set_defaults(func=cmd_crd)

    report = sub.add_parser("report", help="best-seen trace and dollars to reach each level")
    report.add_argument("source", help="a status file from `kubetune run` (runs/NAME/status.yaml)"
                        " or the name of a TuningExperiment in the cluster")
    report.add_argument("-n", "--namespace", default="default")
    report.add_argument("--levels", type=float, nargs="*", default=None,
                        help="objective levels to price (default: each best-so-far value)")
    report.add_argument("--png", type=Path, default=None, help="also write the trace as PNG")
    report.set_defaults(func=cmd_report)

    operator = sub.add_parser("operator", help="run the Kopf operator against the current cluster")
    operator.add_argument("--namespace", action="append", default=None,
                          help="watch only these namespaces (repeatable; default: all)")
    operator.add_argument("--metrics-port", type=int, default=8080)
    operator.add_argument("--health-port", type=int, default=8081)
    operator.add_argument("--default-price", type=float, default=None,
                          help="dollars per trial-hour for experiments that set no price")
    operator.add_argument("--gpu-prices", default=None,
                          help="per-GPU-type prices, e.g. 'nvidia-tesla-t4=0.35,nvidia-a100=2.9'")
    operator.add_argument("--gpu-type-label", default="nvidia.com/gpu.product",
                          help="node label whose value keys --gpu-prices")
    operator.add_argument("--finished-jobs", choices=["keep", "delete"], default="keep",
                          help="what to do with a trial's Job once its result is recorded")
    operator.add_argument("--verbose", action="store_true")
    operator.set_defaults(func=cmd_operator)

    dev = sub.add_parser("dev-cluster", help="local control plane + node agent (no Docker)",
                         add_help=False)
    dev.add_argument("rest", nargs=argparse.REMAINDER)
    dev.set_defaults(func=cmd_dev_cluster)
    return parser


def main(argv: list[str] | None = None) -> Any:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
